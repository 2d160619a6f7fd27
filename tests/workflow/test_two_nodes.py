"""Two nodes of one service: two processes, each with its own Workflow and index files,
on one PostgreSQL database and one home (as on a shared mount).

Node A is this test process; node B is a child process run for each step. Each names
itself with CANDOR_NODE, so each keeps index files of its own under the shared home.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from candor.store import Workspace
from candor.workflow import (
    EnrolmentRequest,
    EnrolmentStatus,
    RequestForm,
    Workflow,
    authenticate,
    enrol_files,
    request_search,
    view_candidates,
)
from candor.workflow.accounts import login as login_user
from candor.workflow.audit_ops import verify_log
from candor.workflow.context import NODE_VARIABLE
from candor.workflow.demo_photos import probe_variants, save_photos
from candor.workflow.worklists import request_status
from tests.agency import PASSWORD, Agency, make_agency, new_user, policy_file
from tests.support import evaluation_provenance

pytestmark = pytest.mark.xdist_group("workflow")

REPO = Path(__file__).resolve().parents[2]
FORM = RequestForm(
    case_number="2026-000779",
    offence_category="robbery",
    purpose="investigative_lead",
    requesting_agency="Example Regional Investigation Unit",
    requesting_unit="Robbery",
    probe_kind="still_photo",
)
# Node B's steps: search with a photo (printing the candidates), expunge a subject, or
# enrol a photo; then print what its index holds.
NODE_B = """
import json, sys
from pathlib import Path
from candor.store import Workspace
from candor.workflow import (EnrolmentRequest, Workflow, authenticate, enrol_files,
    expunge_subject, request_search, view_candidates)
from candor.workflow.accounts import login
from tests.agency import PASSWORD
from tests.support import evaluation_provenance
from tests.workflow.test_two_nodes import FORM

home, step, argument, subject_ref = sys.argv[1:]
with Workflow(Workspace.open(Path(home))) as workflow:
    def actor(name):
        return authenticate(workflow, login(workflow, name, PASSWORD).token)
    answer = {}
    if step == "search":
        outcome = request_search(workflow, actor("ana"), Path(argument), FORM)
        review = view_candidates(workflow, actor("eve"), outcome.search_id)
        answer["candidates"] = [c.subject_ref for c in review.candidates]
    elif step == "expunge":
        expunge_subject(workflow, actor("admin1"), argument)
    else:
        request = EnrolmentRequest(Path(argument), subject_ref)
        enrol_files(workflow, actor("admin1"), [request], evaluation_provenance())
    answer["index"] = sorted(workflow.index.ids.tolist())
    answer["folder"] = str(workflow.index.folder)
print(json.dumps(answer))
"""


@pytest.fixture
def agency(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Agency]:
    monkeypatch.setenv(NODE_VARIABLE, "node-a")
    made = make_agency(tmp_path, database_url=postgres_url)
    (tmp_path / "policy").mkdir()
    made.set_policy(  # each search has its own photo; no repeat-search approvals
        policy_file(
            tmp_path / "policy",
            "two-reviewers",
            source_type="evaluation",
            similarity="similarity = 0.9999",
        )
    )
    yield made
    made.workflow.close()


def on_node_b(agency: Agency, step: str, argument: str, subject_ref: str = "") -> dict[str, object]:
    home = agency.workflow.workspace.home
    env = {**os.environ, NODE_VARIABLE: "node-b", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", NODE_B, str(home), step, argument, subject_ref],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def enrol(workflow: Workflow, agency: Agency, photo: Path, subject_ref: str) -> int:
    request = EnrolmentRequest(photo, subject_ref)
    (outcome,) = enrol_files(
        workflow, agency["admin1"], [request], evaluation_provenance()
    ).outcomes
    assert outcome.status is EnrolmentStatus.ENROLLED, outcome.reason
    assert outcome.template_id is not None
    return outcome.template_id


def candidates(agency: Agency, photo: Path) -> list[str | None]:
    outcome = request_search(agency.workflow, agency["ana"], photo, FORM)
    assert outcome.status == "completed", outcome.decision
    review = view_candidates(agency.workflow, agency["eve"], outcome.search_id)
    return [candidate.subject_ref for candidate in review.candidates]


def files_holding(root: Path, vector: np.ndarray) -> list[Path]:
    """Files under `root` whose bytes contain this float32 vector."""
    wanted = np.asarray(vector, dtype=np.float32).tobytes()
    return [path for path in root.rglob("*") if path.is_file() and wanted in path.read_bytes()]


def test_two_nodes_on_postgres_see_each_others_changes(agency: Agency, tmp_path: Path) -> None:
    assert agency.workflow.workspace.engine.dialect.name == "postgresql"
    photos = save_photos(probe_variants(10), tmp_path / "photos")
    node_a = agency.workflow
    enrol(node_a, agency, photos["collins-00.jpg"], "COLLINS")
    hopper = enrol(node_a, agency, photos["hopper-01.jpg"], "HOPPER")
    assert candidates(agency, photos["collins-02.jpg"])[0] == "COLLINS"
    folder_a = node_a.index.folder
    assert folder_a is not None and "node-a" in folder_a.parts
    vector = node_a.index.vectors_of([hopper])[0]
    # Sealed on disk: no file holds the vector in the clear (tests/index/test_sealed_index.py).
    assert (folder_a / "vectors.sealed").exists() and files_holding(folder_a, vector) == []

    # Enrolled through A, found by B's next search; B's index has files of its own.
    answer = on_node_b(agency, "search", str(photos["hopper-03.jpg"]))
    assert answer["candidates"] == ["HOPPER", "COLLINS"]
    assert "node-b" in Path(str(answer["folder"])).parts

    # Expunged through B: never returned by A, and no copy in any node's index files.
    answer = on_node_b(agency, "expunge", "HOPPER")
    assert hopper not in answer["index"]  # type: ignore[operator]
    assert candidates(agency, photos["hopper-05.jpg"]) == ["COLLINS"]
    assert hopper not in node_a.index
    assert files_holding(tmp_path, vector) == []

    # A node that was down catches up when it starts.
    node_a.close()
    answer = on_node_b(agency, "enrol", str(photos["hopper-07.jpg"]), "HOPPER-2")
    agency.workflow = node_a = Workflow(Workspace.open(node_a.workspace.home))
    assert sorted(node_a.index.ids.tolist()) == answer["index"]
    agency.log_in("ana")
    agency.log_in("eve")
    assert candidates(agency, photos["hopper-09.jpg"])[0] == "HOPPER-2"
    assert verify_log(node_a, agency.add_user(new_user("ada", "auditor"))).ok


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[str]:
    """`candor serve` on `home`, answering on `port` (waited for)."""
    env = {**os.environ, "CANDOR_HOME": str(home)}
    env.pop(NODE_VARIABLE, None)
    command = [sys.executable, "-m", "candor", "serve", "--port", str(port)]
    with log.open("a") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=output, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    pytest.fail("candor serve did not answer within 120 s")


def _api_search(base: str, token: str, photo: Path, case: str) -> httpx.Response:
    fields = {
        "case_number": case,
        "offence_category": FORM.offence_category,
        "purpose": FORM.purpose,
        "requesting_agency": FORM.requesting_agency,
        "requesting_unit": FORM.requesting_unit,
        "probe_kind": FORM.probe_kind,
    }
    return httpx.post(
        f"{base}/api/searches",
        headers={"Authorization": f"Bearer {token}"},
        data=fields,
        files={"probe": (photo.name, photo.read_bytes(), "image/jpeg")},
        timeout=120,
    )


def test_a_server_killed_in_a_search_loses_nothing_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NODE_VARIABLE, raising=False)
    agency = make_agency(tmp_path)
    (tmp_path / "policy").mkdir()
    agency.set_policy(
        policy_file(
            tmp_path / "policy",
            "two-reviewers",
            source_type="evaluation",
            similarity="similarity = 0.9999",
        )
    )
    photos = save_photos(probe_variants(8), tmp_path / "photos")
    enrol(agency.workflow, agency, photos["collins-00.jpg"], "COLLINS")
    home = agency.workflow.workspace.home
    agency.workflow.close()

    port, log = _free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    server = _serve(home, port, log)
    try:
        login = httpx.post(f"{base}/api/login", json={"username": "ana", "password": PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        answered = _api_search(base, token, photos["collins-02.jpg"], "2026-KILL-1")
        assert answered.status_code == 201, answered.text
        kept = answered.json()["search_id"]
        # A second search is sent, and the server killed while it works on it (or just
        # after: either way, nothing it committed may be lost or half-written).
        late: list[httpx.Response | BaseException] = []

        def send() -> None:
            try:
                late.append(_api_search(base, token, photos["collins-04.jpg"], "2026-KILL-2"))
            except httpx.TransportError as error:
                late.append(error)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.5)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        sender.join(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    with Workflow(Workspace.open(home)) as workflow:
        ana = authenticate(workflow, login_user(workflow, "ana", PASSWORD).token)
        assert verify_log(workflow, agency.add_user(new_user("ada", "auditor"))).ok
        eve = authenticate(workflow, login_user(workflow, "eve", PASSWORD).token)
        review = view_candidates(workflow, eve, kept)
        assert [candidate.subject_ref for candidate in review.candidates] == ["COLLINS"]
        if isinstance(late[0], httpx.Response) and late[0].status_code == 200:
            status = request_status(workflow, ana, late[0].json()["search_id"])
            assert status.outcome.status == "completed"

    server = _serve(home, port, log)  # restarted, it answers
    try:
        token = httpx.post(
            f"{base}/api/login", json={"username": "ana", "password": PASSWORD}
        ).json()["token"]
        again = _api_search(base, token, photos["collins-06.jpg"], "2026-KILL-3")
        assert again.status_code == 201 and again.json()["status"] == "completed", again.text
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
