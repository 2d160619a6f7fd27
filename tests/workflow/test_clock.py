"""The workflow's clock dates everything it records; the default is the system clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from candor.audit import parse_time
from candor.store import (
    AdminChange,
    Approval,
    AuditCheckpoint,
    AuditEntry,
    AuthSession,
    FaceTemplate,
    GalleryImage,
    PolicyRecord,
    Provenance,
    Release,
    SearchRequest,
    Subject,
    User,
    Verdict,
)
from candor.workflow import (
    EnrolmentRequest,
    RequestForm,
    Workflow,
    authenticate,
    decide_approval,
    enrol_files,
    record_verdict,
    release_lead,
    request_search,
    run_approved,
    view_candidates,
)
from candor.workflow.accounts import NotAuthenticatedError, bootstrap, login
from candor.workflow.demo_photos import demo_variants, save_photos
from candor.workflow.workspaces import create_workspace
from tests.agency import PASSWORD, Agency, new_user, policy_file

FIXED = datetime(2031, 3, 4, 10, 30, 15, 123456, tzinfo=UTC)
FORM = RequestForm(
    case_number="2031-000001",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)


class MovableClock:
    """A clock a test sets by hand."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def staffed(home: Path, clock: MovableClock) -> Agency:
    """Admins, policy, an analyst, a supervisor and two examiners, all made at `clock`."""
    agency = Agency(Workflow(create_workspace(home / "ws", purpose="demo"), clock=clock))
    expires = FIXED.date() + timedelta(days=365)
    bootstrap(
        agency.workflow,
        new_user("admin1", "admin", unit="Records", expires=expires),
        new_user("admin2", "admin", unit="Records", expires=expires),
    )
    agency.log_in("admin1")
    agency.log_in("admin2")
    agency.set_policy(policy_file(home, "two-reviewers", source_type="demo"))
    for name, role in (("ana", "analyst"), ("sam", "supervisor"), ("eve", "examiner")):
        agency.add_user(new_user(name, role, expires=expires))
    agency.add_user(new_user("eli", "examiner", expires=expires))
    return agency


@pytest.fixture
def fixed_agency(tmp_path: Path) -> Iterator[Agency]:
    agency = staffed(tmp_path, MovableClock(FIXED))
    yield agency
    agency.workflow.close()


def test_a_fixed_clock_dates_every_recorded_time(fixed_agency: Agency, tmp_path: Path) -> None:
    agency, workflow = fixed_agency, fixed_agency.workflow
    photos = save_photos(demo_variants(), tmp_path / "photos")
    provenance = Provenance(
        source_type="demo",
        source_ref="packaged portraits",
        legal_basis="public domain",
        collected_on=date(2024, 1, 1),
        retain_until=date(2030, 1, 1),
    )
    enrol_files(
        workflow,
        agency["admin1"],
        [
            EnrolmentRequest(photos["collins.png"], "DEMO-1"),
            EnrolmentRequest(photos["hopper.jpg"], "DEMO-2"),
        ],
        provenance,
    )
    first = request_search(workflow, agency["ana"], photos["collins-probe.jpg"], FORM)
    repeat = request_search(workflow, agency["ana"], photos["collins-probe.jpg"], FORM)
    assert (first.status, repeat.status) == ("completed", "pending_approval")
    decide_approval(workflow, agency["sam"], repeat.search_id, approve=True, reason="new lead")
    run_approved(workflow, agency["ana"], repeat.search_id)
    view_candidates(workflow, agency["eve"], first.search_id)
    for examiner in ("eve", "eli"):
        record_verdict(
            workflow, agency[examiner], first.search_id, 1, "possible_match", "same features"
        )
    release_lead(workflow, agency["eve"], first.search_id, 1, "two examiners agree")

    with workflow.workspace.session() as session:
        bodies = list(session.scalars(select(AuditEntry.body)))
        times = {parse_time(json.loads(body)["time"]) for body in bodies}
        stamps: dict[str, set[datetime]] = {
            "audit entries": set(session.scalars(select(AuditEntry.created_at))),
            "checkpoints": set(session.scalars(select(AuditCheckpoint.created_at))),
            "users": set(session.scalars(select(User.created_at))),
            "admin changes": set(session.scalars(select(AdminChange.requested_at)))
            | set(session.scalars(select(AdminChange.decided_at))),
            "policies": set(session.scalars(select(PolicyRecord.added_at)))
            | set(session.scalars(select(PolicyRecord.activated_at))),
            "sessions": set(session.scalars(select(AuthSession.created_at))),
            "subjects": set(session.scalars(select(Subject.created_at))),
            "images": set(session.scalars(select(GalleryImage.enrolled_at))),
            "templates": set(session.scalars(select(FaceTemplate.created_at))),
            "requests": set(session.scalars(select(SearchRequest.created_at)))
            | set(session.scalars(select(SearchRequest.ran_at))),
            "approvals": set(session.scalars(select(Approval.decided_at))),
            "verdicts": set(session.scalars(select(Verdict.created_at))),
            "releases": set(session.scalars(select(Release.released_at))),
            "session expiries": {
                expiry - timedelta(hours=8)
                for expiry in session.scalars(select(AuthSession.expires_at))
            },
        }
    assert len(bodies) > 30
    assert times == {FIXED}
    for what, moments in stamps.items():
        assert moments == {FIXED}, what


def test_sessions_and_certificates_follow_the_clock(fixed_agency: Agency) -> None:
    agency, workflow = fixed_agency, fixed_agency.workflow
    clock = workflow.clock
    assert isinstance(clock, MovableClock)
    agency.add_user(new_user("old", "analyst", expires=FIXED.date()))
    token = login(workflow, "old", PASSWORD).token
    # Valid through its last day in the workspace's time zone, by the workflow's clock
    # (by the real calendar this certificate is years away from expiring).
    assert authenticate(workflow, token).certificate_valid
    clock.moment = FIXED + timedelta(days=1)
    with pytest.raises(NotAuthenticatedError, match="expired"):
        authenticate(workflow, token)
    assert not authenticate(workflow, login(workflow, "old", PASSWORD).token).certificate_valid


def test_the_default_clock_is_the_system_clock(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    with Workflow(create_workspace(tmp_path / "ws", purpose="demo")) as workflow:
        bootstrap(
            workflow,
            new_user("admin1", "admin", unit="Records"),
            new_user("admin2", "admin", unit="Records"),
        )
        assert before <= workflow.now() <= datetime.now(UTC)
        assert workflow.today() == datetime.now(workflow.workspace.zone).date()
        with workflow.workspace.session() as session:
            moments = [
                parse_time(json.loads(body)["time"])
                for body in session.scalars(select(AuditEntry.body))
            ]
    after = datetime.now(UTC)
    assert moments
    assert all(before <= moment <= after for moment in moments)


def test_a_clock_without_a_time_zone_is_refused(tmp_path: Path) -> None:
    naive = datetime(2031, 3, 4, 10, 30)
    with (
        Workflow(create_workspace(tmp_path / "ws"), clock=lambda: naive) as workflow,
        pytest.raises(ValueError, match="time zone"),
    ):
        workflow.now()


def test_the_clock_is_read_in_utc(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    local = FIXED.astimezone(ZoneInfo("Pacific/Auckland"))
    workspace = create_workspace(tmp_path / "ws", timezone="Pacific/Auckland")
    with Workflow(workspace, clock=lambda: local) as workflow:
        assert workflow.now() == FIXED
        assert workflow.now().utcoffset() == timedelta(0)
        # 10:30 UTC on 4 March is 23:30 that day in Auckland (NZDT, +13).
        assert workflow.today() == date(2031, 3, 4)
