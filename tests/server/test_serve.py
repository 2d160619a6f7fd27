"""`candor serve --workers 2` as a process: it prints the setup token once, before its
workers start, and a worker accepts (and spends) it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from candor.store import Workspace
from candor.workflow import Workflow
from candor.workflow.server_state import setup_pending
from candor.workflow.workspaces import create_workspace
from tests.agency import PASSWORD

pytestmark = pytest.mark.xdist_group("server")

# Three processes import Candor (the command and two workers): minutes on a loaded machine.
START_SECONDS = 300


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def _wait_for(base: str, server: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, f"candor serve exited:\n{log.read_text()}"
        try:
            if httpx.get(base + "/api/status", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"candor serve did not answer within {START_SECONDS} s:\n{log.read_text()}")


def test_serve_with_two_workers_prints_a_setup_token_a_worker_accepts(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    create_workspace(home, purpose="demo").close()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "CANDOR_HOME": str(home)}
    command = [sys.executable, "-m", "candor", "serve", "--port", str(port), "--workers", "2"]
    with log.open("w") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=output, text=True)
    try:
        _wait_for(base, server, log)
        tokens = re.findall(r"setup token:\s+(\S+)", log.read_text())
        assert len(tokens) == 1, log.read_text()  # printed once, by `candor serve` itself
        with httpx.Client(base_url=base) as client:
            page = client.get("/first-run")
            admin = {
                "unit": "Records",
                "certificate_ref": "FRT-1",
                "certificate_expires": "2030-12-31",
                "password": PASSWORD,
            }
            form = {
                "csrf": _csrf_of(page.text),
                **{f"first_{key}": value for key, value in admin.items()},
                **{f"second_{key}": value for key, value in admin.items()},
                "first_username": "avery",
                "second_username": "blake",
            }
            wrong = client.post("/first-run", data={**form, "setup_token": "guess"})
            assert wrong.status_code == 403
            made = client.post("/first-run", data={**form, "setup_token": tokens[0]})
            assert made.status_code == 200 and "avery" in made.text, made.text
            login = client.post("/api/login", json={"username": "blake", "password": PASSWORD})
            assert login.status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    with Workflow(Workspace.open(home)) as workflow:
        assert not setup_pending(workflow)  # spent: the digest is gone
