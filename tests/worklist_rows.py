"""Search requests written straight into the store, as the workflow would have written
them, for tests of which rows a list shows (no face engine needed)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image
from sqlalchemy import select

from candor.store import Candidate, LeadOutcome, Release, SearchRequest, Verdict
from candor.store.vault import sha256_hex
from tests.agency import Agency

NOW = datetime.now(UTC)


def add_search(
    agency: Agency,
    requester: str,
    case: str,
    *,
    status: str = "completed",
    days_ago: float = 1.0,
    candidates: int = 2,
    earlier: int | None = None,
    probe: bytes | None = None,
) -> int:
    """A search request as the workflow would have written it, `days_ago` old."""
    at = NOW - timedelta(days=days_ago)
    probe_sha256 = sha256_hex(probe) if probe else "a" * 64
    if probe is not None:
        workspace = agency.workflow.workspace
        with workspace.session() as session, session.begin():
            key = workspace.keys.probe_key(session, probe_sha256, create=True)
        workspace.vault.put_probe(probe_sha256, probe, key)
    with agency.workflow.workspace.session() as session, session.begin():
        row = SearchRequest(
            kind="search",
            requester_id=agency[requester].user_id,
            case_number=case,
            offence_category="robbery",
            purpose="investigative_lead",
            requesting_agency="Example City Police Department",
            requesting_unit="Robbery",
            probe_kind="still_photo",
            probe_edited=False,
            requested_top=10,
            status=status,
            decision={"outcome": "allow", "reasons": []},
            policy_sha256="0" * 64,
            probe_sha256=probe_sha256,
            earlier_search_id=earlier,
            created_at=at,
            ran_at=at if status == "completed" else None,
        )
        session.add(row)
        session.flush()
        for rank in range(1, candidates + 1 if status == "completed" else 1):
            session.add(
                Candidate(
                    search_id=row.id,
                    rank=rank,
                    score=0.5,
                    subject_id=rank,
                    image_id=rank,
                    template_id=rank,
                    above_threshold=True,
                )
            )
        return row.id


def judge(
    agency: Agency,
    search_id: int,
    examiner: str,
    *ranks: int,
    verdict: str = "possible_match",
    resolves: bool = False,
) -> None:
    """`examiner`'s verdict on each candidate of `ranks`."""
    with agency.workflow.workspace.session() as session, session.begin():
        rows = session.scalars(select(Candidate).where(Candidate.search_id == search_id))
        for candidate in rows:
            if candidate.rank in ranks:
                session.add(
                    Verdict(
                        candidate_id=candidate.id,
                        examiner_id=agency[examiner].user_id,
                        verdict=verdict,
                        rationale="ears and jawline",
                        created_at=NOW,
                        resolves=resolves,
                    )
                )


def release(agency: Agency, search_id: int, rank: int, *, outcome: str | None = None) -> None:
    with agency.workflow.workspace.session() as session, session.begin():
        candidate = session.scalars(
            select(Candidate).where(Candidate.search_id == search_id, Candidate.rank == rank)
        ).one()
        row = Release(
            candidate_id=candidate.id,
            released_by=agency["eve"].user_id,
            reason="two examiners agree",
            released_at=NOW,
        )
        session.add(row)
        session.flush()
        if outcome is not None:
            session.add(
                LeadOutcome(
                    release_id=row.id,
                    outcome=outcome,
                    note="alibi checked",
                    recorded_by=agency["ana"].user_id,
                    recorded_at=NOW,
                )
            )


def photo() -> bytes:
    pixels = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
