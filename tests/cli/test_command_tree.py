"""Every `candor` command is classified: governed (policy, audit) or not touching faces.

A new command fails here until someone decides which it is; each governed command is
run for real below and must leave its audit entries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from sqlalchemy import select, update
from typer.testing import CliRunner

from candor.cli.accounts import save_token
from candor.cli.app import app
from candor.faces.recipe import RECIPES
from candor.store import AuditEntry, FaceTemplate
from candor.workflow.accounts import login
from tests.agency import PASSWORD, Agency, make_agency
from tests.support import people_with_photos, photos_of

# Commands that compare, hold or release faces: each goes through the policy and the
# audit entries it must write.
GOVERNED: dict[str, tuple[str, ...]] = {
    "enrol": ("gallery.enrolled", "gallery.enrolment_batch"),
    "reenrol": ("gallery.reenrolled",),
    "search": ("search.requested", "policy.decided", "search.run"),
    "verify": ("verify.requested", "policy.decided", "verify.run"),
    "approve": ("search.approved",),
    "reject": ("search.rejected",),
    "run": ("search.run",),
    "candidates": ("candidates.viewed",),
    "review": ("candidate.verdict",),
    "release": ("lead.released",),
    "leads": ("leads.viewed",),
    "outcome": ("lead.outcome_recorded",),
    # A request only: a second admin's `admin confirm` expunges (checked below).
    "expunge": ("gallery.expunge_requested",),
    "retention run": ("retention.run",),
    "calibrate": ("calibration.recorded",),
    "evaluate": ("evaluation.run",),
    "simulate": (
        "simulation.started",
        "user.bootstrap",
        "user.created",
        "policy.changed",
        "gallery.synthetic_loaded",
        "gallery.enrolled",
        "search.requested",
        "policy.decided",
        "search.run",
        "candidate.verdict",
        "lead.released",
        "simulation.finished",
    ),
}
# Governed commands too slow to run in the test below; each is run for real, and its
# audit entries checked against GOVERNED, by the test named.
RUN_ELSEWHERE = {"simulate": "tests/workflow/test_simulation.py"}
# Commands that never compare or show faces (they may be audited too).
NOT_TOUCHING_FACES = {
    "init",
    "upgrade",
    "subjects",
    "show",
    "request",
    "approvals",
    "todo",
    "requests",
    "reviews",
    "audit verify",
    "audit list",
    "audit prove",
    "audit checkpoint",
    "audit export",
    "keys show",
    "keys rotate",
    "bootstrap",
    "login",
    "logout",
    "whoami",
    "user add",
    "user grant",
    "user revoke",
    "user disable",
    "user enable",
    "user certificate",
    "user list",
    "user password",
    "user reset-password",
    "admin pending",
    "admin confirm",
    "admin reject",
    "policy set",
    "policy show",
    "report usage",
    "report transparency",
    "serve",
    "install-service",
    "scrub",
    "check",
    # Copy the sealed vault and the database as they are: no face is opened or compared.
    "backup",
    "restore",
    "jobs list",
    "jobs show",
    "jobs cancel",
    "jobs resume",
    # Admin actions on the face-model registry and its listing: no face is compared.
    "model add",
    "model confirm",
    "model reject",
    "model list",
    "model show",
    # Directory group mappings and person confirmations (admin actions) and their listing.
    "directory map",
    "directory confirm",
    "directory reject",
    "directory withdraw",
    "directory confirm-person",
    "directory reject-person",
    "directory list",
    "directory test",
    # Runs queued actions; tests/workflow/test_jobs.py checks their entries against the
    # same actions run directly.
    "jobs run",
}


def command_paths() -> Iterator[str]:
    def walk(command: object, prefix: tuple[str, ...]) -> Iterator[str]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk(sub, (*prefix, name))
        else:
            yield " ".join(prefix)

    yield from walk(typer.main.get_command(app), ())


def test_every_command_is_classified() -> None:
    paths = set(command_paths())
    unclassified = paths - set(GOVERNED) - NOT_TOUCHING_FACES
    assert not unclassified, f"classify these commands: {sorted(unclassified)}"
    assert not set(GOVERNED) & NOT_TOUCHING_FACES
    missing = (set(GOVERNED) | NOT_TOUCHING_FACES) - paths
    assert not missing, f"classified but absent: {sorted(missing)}"


REQUEST = [
    "--case", "2026-000777",
    "--offence", "robbery",
    "--purpose", "investigative_lead",
    "--agency", "Example Regional Investigation Unit",
    "--unit", "Robbery",
]  # fmt: skip


class Cli:
    """Runs `candor` as one agency member after another, and reads the audit log."""

    def __init__(self, agency: Agency) -> None:
        self.agency = agency
        self.home = agency.workflow.workspace.home
        self.runner = CliRunner()

    def as_user(self, name: str) -> Cli:
        token = login(self.agency.workflow, name, PASSWORD).token
        save_token(self.home, token)
        return self

    def run(self, *args: str) -> dict[str, object]:
        result = self.runner.invoke(app, [*args, "--json"], env={"CANDOR_HOME": str(self.home)})
        assert result.stdout.strip(), result.stderr
        return json.loads(result.stdout)

    def last_seq(self) -> int:
        with self.agency.workflow.workspace.session() as session:
            return max(session.scalars(select(AuditEntry.seq)), default=0)

    def actions_since(self, seq: int) -> list[str]:
        with self.agency.workflow.workspace.session() as session:
            bodies = session.scalars(select(AuditEntry.body).where(AuditEntry.seq > seq))
            return [json.loads(body)["action"] for body in bodies]


@pytest.mark.faces
@pytest.mark.xdist_group("workflow")
def test_every_governed_command_writes_its_audit_entries(tmp_path: Path, faces_dir: Path) -> None:
    cli = Cli(make_agency(tmp_path))
    people = people_with_photos(faces_dir, 4)
    gallery = tmp_path / "gallery"
    for person in people:
        (gallery / person.name).mkdir(parents=True)
        (gallery / person.name / "1.jpg").symlink_to(photos_of(person)[0])
    probe = str(photos_of(people[1])[1])
    seen: dict[str, list[str]] = {}

    def governed(command: str, *args: str) -> dict[str, object]:
        before = cli.last_seq()
        payload = cli.run(*command.split(), *args)
        assert payload.get("ok", True) or command == "search", payload
        seen[command] = cli.actions_since(before)
        return payload

    cli.as_user("admin1")
    governed(
        "enrol", str(gallery), "--from-folders", "--source", "evaluation",
        "--source-ref", "lfw-dev", "--legal-basis", "research use",
        "--collected", "2024-01-01", "--retain-until", "2030-01-01",
    )  # fmt: skip
    # As if an earlier Candor, whose recipe enrolled with flip views, had made them.
    with cli.agency.workflow.workspace.session() as session, session.begin():
        session.execute(update(FaceTemplate).values(recipe=RECIPES["flip"].key))
    census = cli.run("reenrol", "--check")["census"]
    assert isinstance(census, dict) and census["stale"] == 4, census
    reenrolled = governed("reenrol")["summary"]
    assert isinstance(reenrolled, dict) and len(reenrolled["remade"]) == 4, reenrolled
    cli.as_user("ana")
    first = governed("search", probe, *REQUEST)
    governed("verify", probe, str(photos_of(people[1])[0]), *REQUEST)
    repeat = cli.run("search", probe, *REQUEST)
    another = cli.run("search", probe, *REQUEST)
    cli.as_user("sam")
    governed("approve", str(repeat["search_id"]), "--reason", "new evidence")
    governed("reject", str(another["search_id"]), "--reason", "no new evidence")
    cli.as_user("ana")
    governed("run", str(repeat["search_id"]))
    search_id = str(first["search_id"])
    cli.as_user("eve")
    governed("candidates", search_id)
    governed(
        "review", search_id, "--candidate", "1", "--verdict", "possible_match",
        "--rationale", "same ear shape",
    )  # fmt: skip
    cli.as_user("eli")
    cli.run(
        "review", search_id, "--candidate", "1", "--verdict", "possible_match",
        "--rationale", "same scar",
    )  # fmt: skip
    governed("release", search_id, "--candidate", "1", "--reason", "two examiners agree")
    cli.as_user("ana")
    governed("leads", search_id)
    governed("outcome", search_id, "1", "pending", "--note", "awaiting the phone records")
    cli.as_user("admin1")
    requested = governed("expunge", people[3].name, "--yes", "--reason", "court order")
    change = requested["change"]
    assert isinstance(change, dict), requested
    cli.as_user("admin2")
    before = cli.last_seq()
    assert cli.run("admin", "confirm", str(change["id"]))["ok"] is True
    assert "gallery.expunged" in cli.actions_since(before)
    cli.as_user("admin1")
    governed("retention run")
    labelled = tmp_path / "labelled"
    for person in people_with_photos(faces_dir, 10):
        (labelled / person.name).mkdir(parents=True)
        for photo in photos_of(person)[:2]:
            (labelled / person.name / photo.name).symlink_to(photo)
    governed("calibrate", str(labelled))
    governed("evaluate", str(labelled), "--bootstrap", "100", "--workers", "1")

    for command, expected in GOVERNED.items():
        if command in RUN_ELSEWHERE:
            continue
        assert command in seen, f"the test did not run {command}"
        for action in expected:
            assert action in seen[command], f"{command} wrote {seen[command]}, not {action}"
