"""One Workflow answers requests from many threads at once, as a server's threads do.

Searches, enrolments and expungements run side by side on one Workflow with no lock
around whole requests; every answer must be one the committed gallery could give, the
index must end as the store's templates, and the audit log must verify.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from candor.store.changes import stored_template_ids
from candor.workflow import (
    EnrolmentRequest,
    EnrolmentStatus,
    RequestForm,
    enrol_files,
    expunge_subject,
    request_search,
    view_candidates,
)
from candor.workflow.audit_ops import verify_log
from candor.workflow.demo_photos import probe_variants, save_photos
from tests.agency import Agency, make_agency, new_user, policy_file
from tests.support import evaluation_provenance

pytestmark = pytest.mark.xdist_group("workflow")

FORM = RequestForm(
    case_number="2026-000778",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)
ROUNDS = 2  # enrol-then-expunge rounds, and searches per search thread


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    made = make_agency(tmp_path)
    # Each search has a photo of its own; the repeat rule would send near-identical
    # variants of one portrait to a supervisor.
    (tmp_path / "policy").mkdir()
    similarity = "similarity = 0.9999"
    made.set_policy(
        policy_file(
            tmp_path / "policy", "two-reviewers", source_type="evaluation", similarity=similarity
        )
    )
    yield made
    made.workflow.close()


def run_at_once(jobs: list[Callable[[], None]]) -> None:
    """Run every job in its own thread, started together; re-raise the first failure."""
    start = threading.Barrier(len(jobs))
    failures: list[BaseException] = []

    def body(job: Callable[[], None]) -> None:
        start.wait()
        try:
            job()
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=body, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def test_searches_enrolments_and_expungements_at_once(agency: Agency, tmp_path: Path) -> None:
    # collins-00 enrolled, hopper-01, -03, -05 enrolled and expunged, the rest searched.
    photos = save_photos(probe_variants(16), tmp_path / "photos")
    provenance = evaluation_provenance()
    admin, ana, eve = agency["admin1"], agency["ana"], agency["eve"]
    workflow = agency.workflow

    def enrol(photo: str, subject_ref: str) -> None:
        request = EnrolmentRequest(photos[photo], subject_ref)
        (outcome,) = enrol_files(workflow, admin, [request], provenance).outcomes
        assert outcome.status is EnrolmentStatus.ENROLLED, outcome.reason

    enrol("collins-00.jpg", "COLLINS")
    assert len(workflow.index) == 1  # opened before the threads, as a warm server's is

    enrolled: list[threading.Event] = [threading.Event() for _ in range(ROUNDS)]
    expunged: set[str] = set()
    answers: list[tuple[str, list[str | None]]] = []

    def enrolments() -> None:
        for round_ in range(ROUNDS):
            enrol(f"hopper-{1 + 2 * round_:02d}.jpg", f"HOPPER-{round_}")
            enrolled[round_].set()

    def expungements() -> None:
        for round_ in range(ROUNDS):
            enrolled[round_].wait(timeout=300)
            expunge_subject(workflow, admin, f"HOPPER-{round_}")
            expunged.add(f"HOPPER-{round_}")

    def searches(person: str, first: int) -> Callable[[], None]:
        def job() -> None:
            for number in range(first, first + 2 * ROUNDS, 2):
                photo = f"{person}-{number:02d}.jpg"
                gone_before = set(expunged)
                outcome = request_search(workflow, ana, photos[photo], FORM)
                assert outcome.status == "completed", outcome.decision
                review = view_candidates(workflow, eve, outcome.search_id)
                refs = [candidate.subject_ref for candidate in review.candidates]
                # Expunged before the search began: never a candidate.
                assert not gone_before & set(refs), (photo, refs, gone_before)
                answers.append((photo, refs))

        return job

    run_at_once([enrolments, expungements, searches("collins", 2), searches("hopper", 7)])

    assert len(answers) == 2 * ROUNDS
    for photo, refs in answers:
        assert set(refs) <= {"COLLINS", None, *(f"HOPPER-{n}" for n in range(ROUNDS))}
        if photo.startswith("collins"):
            assert refs[0] == "COLLINS", refs
    # The index ends as the store: the one template never expunged, nothing else.
    with workflow.workspace.session() as session:
        stored = stored_template_ids(session, workflow.engine.model.key)
    assert len(stored) == 1
    assert workflow.index.live_ids == stored
    outcome = request_search(workflow, ana, photos["hopper-13.jpg"], FORM)
    review = view_candidates(workflow, eve, outcome.search_id)
    assert [candidate.subject_ref for candidate in review.candidates] == ["COLLINS"]
    assert verify_log(workflow, agency.add_user(new_user("ada", "auditor"))).ok
