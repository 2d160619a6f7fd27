"""The bulk synthetic loader makes the gallery the one-at-a-time loader makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from candor.audit.canonical import parse_entry
from candor.simulation.synthetic import load_synthetic_gallery, synthetic_templates
from candor.store import AuditEntry, FaceTemplate, GalleryImage, Subject, templates_for_model
from candor.workflow.audit_ops import verify_log
from tests.agency import Agency, make_agency, new_user

SUBJECTS = 300
PER_SUBJECT = 2
SEED = 7


def loaded(home: Path, *, one_at_a_time: bool) -> tuple[Agency, dict[str, Any]]:
    agency = make_agency(home, purpose="benchmark")
    load_synthetic_gallery(
        agency.workflow,
        agency["admin1"],
        subjects=SUBJECTS,
        images_per_subject=PER_SUBJECT,
        seed=SEED,
        batch_size=128,
        one_at_a_time=one_at_a_time,
    )
    vault = agency.workflow.workspace.vault
    with agency.workflow.workspace.session() as session:
        subjects = [
            (row.id, row.external_ref, row.created_by)
            for row in session.scalars(select(Subject).order_by(Subject.id))
        ]
        images = [
            (row.id, row.subject_id, row.sha256, row.byte_size, row.source_type, row.quality)
            for row in session.scalars(select(GalleryImage).order_by(GalleryImage.id))
        ]
        rows = session.scalars(select(FaceTemplate).order_by(FaceTemplate.id)).all()
        workspace = agency.workflow.workspace
        opened = {
            template_id: vector.tobytes()
            for template_id, _, _, vector in templates_for_model(
                session, rows[0].model_key, workspace.vault, workspace.keys
            )
        }
        # Sealed under a random nonce: the two loads' ciphertexts differ, their vectors not.
        templates = [
            (row.id, row.image_id, row.subject_id, row.model_key, row.recipe, opened[row.id])
            for row in rows
        ]
        entries = [
            parse_entry(row.body)
            for row in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]
    with agency.workflow.workspace.session() as session:
        keys = agency.workflow.workspace.keys.subject_keys(session, {row[1] for row in images})
    for _, subject_id, sha256, size, _, _ in images:
        assert len(vault.get_image(sha256, keys[subject_id])) == size
    content = {
        "subjects": subjects,
        "images": images,
        "templates": templates,
        # Times differ between the two runs; what each entry says does not.
        "log": [
            (e["actor"], e["objects"], e["details"])
            for e in entries
            if e["action"] == "gallery.synthetic_loaded"
        ],
    }
    return agency, content


def test_bulk_load_matches_the_one_at_a_time_load(tmp_path: Path) -> None:
    bulk, bulk_content = loaded(tmp_path / "bulk", one_at_a_time=False)
    single, single_content = loaded(tmp_path / "single", one_at_a_time=True)
    try:
        assert len(bulk_content["subjects"]) == SUBJECTS
        assert len(bulk_content["templates"]) == SUBJECTS * PER_SUBJECT
        assert len(bulk_content["log"]) == 3  # batches of 128
        for key in ("subjects", "images", "templates", "log"):
            assert bulk_content[key] == single_content[key], key
        for agency in (bulk, single):
            auditor = agency.add_user(new_user("ada", "auditor", unit="Audit"))
            # `candor audit verify`: the log, and gallery_images reconciled against it.
            report = verify_log(agency.workflow, auditor)
            assert report.ok, report.summary()
        vectors = synthetic_templates(SUBJECTS, PER_SUBJECT, 128, SEED)
        index = bulk.workflow.index
        assert len(index) == SUBJECTS * PER_SUBJECT
        by_template = {t[0]: t[2] for t in bulk_content["templates"]}
        subject_ids = [s[0] for s in bulk_content["subjects"]]
        for number in (0, 150, SUBJECTS - 1):
            found, _ = index.search(np.asarray(vectors[number, 0]), 1)[0]
            assert by_template[found] == subject_ids[number]
    finally:
        bulk.workflow.close()
        single.workflow.close()
