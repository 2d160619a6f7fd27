"""`audit verify` reconciles the store with the log: tampered rows fail it, by table and row.

Issue 12, fault 9: a role inserted straight into `user_roles`, or a candidate row
re-pointed to another person, left every entry and checkpoint intact, so verification
said OK. One small agency is built once (enrolment, a search, two verdicts, a release);
each test tampers with a copy of it as an insider with the database would (sqlite3 on
the file, or a PostgreSQL client).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from candor.audit import VerificationReport
from candor.audit.verifier import main as outside_verifier
from candor.cli.app import app
from candor.cli.session import token_path
from candor.store import Workspace
from candor.workflow import (
    Actor,
    EnrolmentRequest,
    RequestForm,
    Workflow,
    enrol_files,
    record_verdict,
    release_lead,
    request_search,
)
from candor.workflow.accounts import login
from candor.workflow.audit_ops import export_log, verify_log
from tests.agency import PASSWORD, make_agency, new_user
from tests.support import (
    copy_workspace,
    evaluation_provenance,
    people_with_photos,
    photos_of,
    raw_sql,
)

if TYPE_CHECKING:
    from candor.workflow.reconciliation import Difference, StoreReconciliation

FORM = RequestForm(
    case_number="2026-000912",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)
PROVENANCE = evaluation_provenance()


@dataclass(frozen=True)
class Built:
    """The agency's workspace as it was left, and what the tests need to know of it."""

    home: Path
    actors: dict[str, Actor]
    search_id: int


@dataclass(frozen=True)
class Copy:
    home: Path
    built: Built

    def sql(self, statement: str, *args: object) -> None:
        changed, _ = raw_sql(self.home, statement, *args)
        assert changed >= 1, "the tampering changed nothing"

    def one(self, query: str, *args: object) -> tuple[object, ...]:
        _, rows = raw_sql(self.home, query, *args)
        assert rows, query
        return rows[0]

    def user_id(self, username: str) -> int:
        return int(str(self.one("SELECT id FROM users WHERE username = ?", username)[0]))

    def verify(self) -> VerificationReport:
        with Workflow(Workspace.open(self.home)) as workflow:
            return verify_log(workflow, self.built.actors["ada"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("reconcile")
    agency = make_agency(root)
    agency.add_user(new_user("ada", "auditor", unit="Internal Affairs"))
    people = people_with_photos(faces_dir, 4)
    requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
    workflow = agency.workflow
    enrol_files(workflow, agency["admin1"], requests, PROVENANCE)
    outcome = request_search(workflow, agency["ana"], photos_of(people[2])[1], FORM)
    assert outcome.status == "completed" and outcome.candidates_found == 4
    search_id = outcome.search_id
    record_verdict(workflow, agency["eve"], search_id, 1, "possible_match", "ear shape")
    record_verdict(workflow, agency["eli"], search_id, 1, "possible_match", "scar")
    record_verdict(workflow, agency["eli"], search_id, 2, "not_a_match", "jaw line")
    release_lead(workflow, agency["eve"], search_id, 1, "two examiners agree")
    workflow.workspace.engine.dispose()
    home = root / "pristine"
    copy_workspace(workflow.workspace.home, home)
    yield Built(home, dict(agency.actors), search_id)
    workflow.close()


@pytest.fixture
def copy(built: Built, tmp_path: Path) -> Copy:
    target = tmp_path / "ws"
    return Copy(copy_workspace(built.home, target), built)


def store_of(report: VerificationReport) -> StoreReconciliation:
    # Imported here, so that on code without reconciliation each test fails on its verdict.
    from candor.workflow.reconciliation import StoreCheckedReport

    assert isinstance(report, StoreCheckedReport) and report.store is not None
    return report.store


def differences_in(report: VerificationReport, table: str) -> list[Difference]:
    return [d for d in store_of(report).differences if d.table == table]


# -- the workspace as the workflow left it ---------------------------------------------------


@pytest.mark.faces
def test_an_untampered_workspace_verifies_and_says_what_the_log_proves(copy: Copy) -> None:
    report = copy.verify()
    assert report.ok, report.problem
    store = store_of(report)
    assert store.made and store.difference_count == 0
    proved = {table.table for table in store.proved}
    assert {"users", "user_roles", "candidates", "verdicts", "releases", "approvals"} <= proved
    assert {"search_requests", "gallery_images"} <= {table.table for table in store.partly}
    assert {"subjects", "face_templates"} <= {table.table for table in store.not_covered}
    text = report.summary()
    assert "proved by the log: users, user_roles" in text
    assert "not covered:" in text and "subjects: names and booking numbers" in text
    assert text.index("store tables:") < text.index("result:             OK")


# -- the two reported tamperings, and a changed verdict --------------------------------------


@pytest.mark.faces
def test_a_role_inserted_into_user_roles_fails_verification(copy: Copy) -> None:
    ana = copy.user_id("ana")
    copy.sql("INSERT INTO user_roles (user_id, role) VALUES (?, 'admin')", ana)
    report = copy.verify()
    assert not report.ok
    assert "user_roles" in (report.problem or "")
    [difference] = differences_in(report, "user_roles")
    assert difference.row == f"user_id {ana}, role 'admin'"
    assert difference.log == "ana holds ['analyst']"
    assert difference.store == "a row granting it"
    assert "FAILED" in report.summary()


@pytest.mark.faces
def test_a_candidate_re_pointed_to_another_subject_fails_verification(copy: Copy) -> None:
    search = copy.built.search_id
    first = copy.one(
        "SELECT id, subject_id, image_id, template_id FROM candidates "
        "WHERE search_id = ? AND rank = 1",
        search,
    )
    other = copy.one(
        "SELECT subject_id, image_id, template_id FROM candidates WHERE search_id = ? AND rank = 3",
        search,
    )
    # A consistent triple of another enrolled person: nothing but the log can tell.
    copy.sql(
        "UPDATE candidates SET subject_id = ?, image_id = ?, template_id = ? WHERE id = ?",
        *other,
        first[0],
    )
    report = copy.verify()
    assert not report.ok
    found = differences_in(report, "candidates")
    assert [d.column for d in found] == ["subject_id", "image_id", "template_id"]
    assert {d.row for d in found} == {f"id {first[0]} (search {search}, rank 1)"}
    assert [(d.log, d.store) for d in found] == list(zip(first[1:], other, strict=True))


@pytest.mark.faces
def test_a_changed_verdict_fails_verification(copy: Copy) -> None:
    eli = copy.user_id("eli")
    copy.sql(
        "UPDATE verdicts SET verdict = 'possible_match' "
        "WHERE examiner_id = ? AND verdict = 'not_a_match'",
        eli,
    )
    report = copy.verify()
    assert not report.ok
    [difference] = differences_in(report, "verdicts")
    assert difference.column == "verdict"
    assert (difference.log, difference.store) == ("not_a_match", "possible_match")
    assert difference.row.startswith("id ") and difference.row.endswith(", eli)")


@pytest.mark.faces
def test_a_relabelled_release_fails_verification(copy: Copy) -> None:
    copy.sql("UPDATE releases SET label = 'positive identification'")
    report = copy.verify()
    assert not report.ok
    [difference] = differences_in(report, "releases")
    assert (difference.column, difference.store) == ("label", "positive identification")


@pytest.mark.faces
def test_a_password_hash_copied_from_another_user_fails_verification(copy: Copy) -> None:
    copy.sql(
        "UPDATE users SET password_hash = "
        "(SELECT password_hash FROM users WHERE username = 'admin1') WHERE username = 'ana'"
    )
    report = copy.verify()
    assert not report.ok
    [difference] = differences_in(report, "users")
    assert difference.column == "password_hash"
    assert difference.row == f"id {copy.user_id('ana')} (ana)"


# -- the command line and the outside verifier -----------------------------------------------


def cli_verify(home: Path, *options: str) -> tuple[int, str]:
    with Workflow(Workspace.open(home)) as workflow:
        token = login(workflow, "ada", PASSWORD).token
    path = token_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token)
    result = CliRunner().invoke(app, ["audit", "verify", "--home", str(home), *options])
    return result.exit_code, result.stdout


@pytest.mark.faces
def test_the_command_fails_on_a_tampered_store_and_lists_the_tables(copy: Copy) -> None:
    code, out = cli_verify(copy.home)
    assert code == 0
    assert "proved by the log:" in out and "not covered:" in out

    copy.sql("INSERT INTO user_roles (user_id, role) VALUES (?, 'admin')", copy.user_id("ana"))
    code, out = cli_verify(copy.home, "--json")
    assert code == 1
    answer = json.loads(out)
    assert answer["ok"] is False
    store = answer["store"]
    assert "users" in [table["table"] for table in store["proved"]]
    assert "subjects" in [table["table"] for table in store["not_covered"]]
    assert store["differences"][0]["table"] == "user_roles"


@pytest.mark.faces
def test_the_outside_verifier_says_it_proves_the_log_only(
    copy: Copy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workflow(Workspace.open(copy.home)) as workflow:
        export_log(workflow, copy.built.actors["ada"], tmp_path / "export")
    assert outside_verifier([str(tmp_path / "export")]) == 0
    assert "proves the log only" in capsys.readouterr().out
