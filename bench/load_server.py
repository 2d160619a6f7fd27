"""The server under load: 16 concurrent API clients requesting searches for 60 seconds.

Run: cd bench && ../.venv/bin/python load_server.py  (load: 60 s; setup: the 100k-subject
synthetic load, 18 min with the old per-row loader, about 2 min in bulk: bench/gallery_load.py)

What it does, on this machine only (127.0.0.1, nothing else is contacted):

1. A new `benchmark` workspace in a temporary folder: two admins, 16 analysts, and a
   benchmark policy derived from the two-reviewers example (below), put in force by two
   admins as any policy is.
2. A gallery of 100,000 synthetic templates (one per made-up subject), loaded by the
   workflow's synthetic loader, which refuses every workspace but simulation and
   benchmark ones. No face of a real person is in the gallery.
3. `candor serve`'s app (uvicorn, the create_app_from_env factory) in a subprocess on a
   free loopback port. Each client logs in through `POST /api/login` and sends
   `POST /api/searches` with a probe photo and the case form, one request at a time,
   until 60 s have passed (requests still in flight then are awaited and counted).
4. Afterwards, the audit log is read from the workspace: for every request the exact
   entries the accountable search issue lists (search.requested, policy.decided,
   search.run, each naming the request) and nothing else; and, over the whole load
   phase, no entry beyond those and the 16 logins.

The benchmark policy "allows repeats" as far as the policy schema lets it: the repeat
rule (same probe sha256, or a probe template at or above `repeat.similarity` to one
searched within `repeat.window_days`) sends a repeat to a supervisor, and the schema
requires window_days >= 1 and similarity < 1. So the policy sets window_days = 1 and
similarity = 0.9999, quotas far above what 60 s can reach, and every request sends a
probe photo of its own: distinct crops, scales and exposures of the demo portraits
(candor.workflow.demo_photos.probe_variants), so no two share a hash or a template.
Any request the policy still held for approval would show in `outcomes` and fail the
audit check, which expects every request to run.

The server serialises every workflow call under one lock (the face engine is not
thread-safe), so 16 clients share one worker: throughput is that of one search at a
time, and latency grows with the queue (about 16 times one request's service time).

Writes bench/results/load_server.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from _common import write_results
from candor.audit.canonical import parse_entry
from candor.policy import example_policy_path
from candor.simulation.synthetic import load_synthetic_gallery
from candor.store import Workspace
from candor.store.governance import AuditEntry
from candor.workflow import Workflow, authenticate
from candor.workflow.accounts import (
    NewUser,
    bootstrap,
    confirm_change,
    login,
    request_policy_change,
    request_user,
)
from candor.workflow.demo_photos import probe_variants
from candor.workflow.workspaces import create_workspace

PASSWORD = "benchmark password, loopback only"
CLIENTS = 16
SECONDS = 60.0
GALLERY = 100_000
PROBES = 3000
PER_REQUEST = ("search.requested", "policy.decided", "search.run")
CASE = {
    "case_number": "BENCH-0001",
    "offence_category": "robbery",
    "purpose": "investigative_lead",
    "requesting_agency": "Example City Police Department",
    "requesting_unit": "Robbery",
    "probe_kind": "still_photo",
    "top": "20",
}
POLICY_LINES = {
    "source_types": 'source_types = ["benchmark"]',
    "window_days": "window_days = 1",
    "similarity": "similarity = 0.9999",
    "per_user_per_day": "per_user_per_day = 1000000",
    "per_user_per_30_days": "per_user_per_30_days = 1000000",
}


def user(name: str, role: str, unit: str) -> NewUser:
    return NewUser(
        username=name,
        unit=unit,
        certificate_ref=f"BENCH-{name}",
        certificate_expires=date.today() + timedelta(days=365),
        password=PASSWORD,
        roles=(role,),
    )


def benchmark_policy(folder: Path) -> Path:
    lines = []
    for line in example_policy_path("two-reviewers").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(POLICY_LINES.get(key, line))
    path = folder / "benchmark-policy.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def set_up(home: Path, gallery: int) -> dict[str, Any]:
    """The workspace, its people, policy and synthetic gallery; timings of each step."""
    started = time.perf_counter()
    workflow = Workflow(create_workspace(home / "ws", purpose="benchmark"))
    try:
        bootstrap(workflow, user("admin1", "admin", "Records"), user("admin2", "admin", "Records"))
        admin1 = authenticate(workflow, login(workflow, "admin1", PASSWORD).token)
        admin2 = authenticate(workflow, login(workflow, "admin2", PASSWORD).token)
        change = request_policy_change(workflow, admin1, benchmark_policy(home))
        confirm_change(workflow, admin2, change.id)
        for number in range(CLIENTS):
            change = request_user(
                workflow, admin1, user(f"analyst{number:02d}", "analyst", "Robbery")
            )
            confirm_change(workflow, admin2, change.id)
        people = time.perf_counter()
        loaded = load_synthetic_gallery(workflow, admin1, subjects=gallery, seed=5, prefix="BENCH")
        done = time.perf_counter()
    finally:
        workflow.close()
    return {
        "people_and_policy_s": round(people - started, 1),
        "gallery_load_s": round(done - people, 1),
        "gallery_templates": loaded.templates,
        "model": loaded.model,
    }


def probe_files(count: int) -> list[bytes]:
    """`count` distinct JPEG probes of the demo portraits (never LFW, never casework)."""
    photos = []
    for picture in probe_variants(count, seed=11).values():
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=92)
        photos.append(buffer.getvalue())
    return photos


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CANDOR_HOME": str(home / "ws")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "candor.server.app:create_app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def wait_until_up(base: str, server: subprocess.Popen[bytes], limit: float = 120) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base) as client:
        while time.perf_counter() - started < limit:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            try:
                if (await client.get("/api/status")).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the server did not answer within 120 s")


class Load:
    """Shared state of the clients: probes handed out once each, results."""

    def __init__(self, probes: list[bytes]) -> None:
        self.probes = probes
        self.next_probe = 0
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.search_ids: list[int] = []
        self.outcomes: Counter[str] = Counter()

    def probe(self) -> bytes | None:
        if self.next_probe >= len(self.probes):
            return None
        self.next_probe += 1
        return self.probes[self.next_probe - 1]


async def client_loop(base: str, name: str, load: Load, deadline: float) -> None:
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as client:
        answer = await client.post("/api/login", json={"username": name, "password": PASSWORD})
        if answer.status_code != 200:
            load.errors.append(f"{name} login: {answer.status_code} {answer.text[:200]}")
            return
        headers = {"Authorization": f"Bearer {answer.json()['token']}"}
        while time.perf_counter() < deadline:
            probe = load.probe()
            if probe is None:
                load.errors.append(f"{name}: ran out of distinct probes")
                return
            sent = time.perf_counter()
            try:
                answer = await client.post(
                    "/api/searches",
                    headers=headers,
                    data=CASE,
                    files={"probe": ("probe.jpg", probe, "image/jpeg")},
                )
            except httpx.HTTPError as error:
                load.errors.append(f"{name}: {type(error).__name__}: {error}")
                continue
            load.latencies.append(time.perf_counter() - sent)
            if answer.status_code != 200:
                load.errors.append(f"{name}: {answer.status_code} {answer.text[:200]}")
                continue
            outcome = answer.json()
            load.search_ids.append(int(outcome["search_id"]))
            load.outcomes[str(outcome["status"])] += 1


async def run_load(base: str, load: Load, seconds: float) -> float:
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(client_loop(base, f"analyst{n:02d}", load, deadline) for n in range(CLIENTS))
    )
    return time.perf_counter() - started


def audit_entries_after(home: Path, seq: int) -> list[dict[str, Any]]:
    """Every audit entry after `seq`, parsed from its canonical bytes."""
    # Read straight from the store, with no engine loaded and nothing written.
    workspace = Workspace.open(home / "ws")
    try:
        with workspace.session() as session:
            rows = session.scalars(select(AuditEntry).where(AuditEntry.seq > seq)).all()
            return [dict(parse_entry(row.body)) for row in rows]
    finally:
        workspace.close()


def last_seq(home: Path) -> int:
    entries = audit_entries_after(home, 0)
    return max((entry["seq"] for entry in entries), default=0)


def check_audit(entries: list[dict[str, Any]], search_ids: list[int]) -> dict[str, Any]:
    """Exactly the three entries per request; besides them only the 16 clients' logins."""
    per_search: dict[int, list[str]] = {}
    others: Counter[str] = Counter()
    for entry in entries:
        search = entry["objects"].get("search")
        if isinstance(search, int):
            per_search.setdefault(search, []).append(entry["action"])
        else:
            others[entry["action"]] += 1
    wrong = {
        search_id: actions
        for search_id, actions in per_search.items()
        if sorted(actions) != sorted(PER_REQUEST)
    }
    unexplained = set(per_search) - set(search_ids)
    missing = set(search_ids) - set(per_search)
    expected_total = len(PER_REQUEST) * len(search_ids) + CLIENTS
    return {
        "entries_during_load": len(entries),
        "expected_entries": expected_total,
        "requests_with_exactly_the_three_entries": len(per_search) - len(wrong),
        "requests_with_other_entries": len(wrong),
        "entries_for_unknown_requests": len(unexplained),
        "requests_without_entries": len(missing),
        "other_entries": dict(others),
        "ok": not wrong
        and not unexplained
        and not missing
        and dict(others) == {"auth.login": CLIENTS}
        and len(entries) == expected_total,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gallery", type=int, default=GALLERY)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--probes", type=int, default=PROBES)
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="candor-load-") as folder:
        home = Path(folder)
        setup = set_up(home, options.gallery)
        setup["load_average_after_setup"] = [round(value, 1) for value in os.getloadavg()]
        print(f"setup: {setup}", flush=True)
        probes = probe_files(options.probes)
        before = last_seq(home)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(home, port)
        try:
            startup = asyncio.run(wait_until_up(base, server))
            print(f"server up in {startup:.1f} s; {CLIENTS} clients for {options.seconds:.0f} s")
            load = Load(probes)
            elapsed = asyncio.run(run_load(base, load, options.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
        audit = check_audit(audit_entries_after(home, before), load.search_ids)
    completed = len(load.search_ids)
    result = {
        "setup": {
            **setup,
            "workspace_purpose": "benchmark",
            "server_start_s": round(startup, 1),
            "bind": "127.0.0.1 (loopback only)",
            "policy": "two-reviewers example with " + "; ".join(POLICY_LINES.values()),
            "probes": "distinct demo-portrait variants, one per request (probe_variants, seed 11)",
        },
        "load_average_1_5_15_min_at_end": [round(value, 1) for value in os.getloadavg()],
        "clients": CLIENTS,
        "load_seconds": options.seconds,
        "elapsed_s": round(elapsed, 2),
        "requests": len(load.latencies),
        "completed_searches": completed,
        "outcomes": dict(load.outcomes),
        "errors": len(load.errors),
        "error_samples": load.errors[:5],
        "throughput_per_s": round(completed / elapsed, 2),
        "latency_s": {
            "p50": round(percentile(load.latencies, 0.50), 3),
            "p99": round(percentile(load.latencies, 0.99), 3),
            "mean": round(statistics.fmean(load.latencies), 3),
            "max": round(max(load.latencies), 3),
        }
        if load.latencies
        else None,
        "audit": audit,
        "note": (
            "Every workflow call of the server runs under one process-wide lock (the face "
            "engine is not thread-safe), so the 16 clients are served one search at a time: "
            "throughput is one worker's, and latency is about the queue length times one "
            "search's service time."
        ),
    }
    print(json.dumps(result, indent=2))
    if not options.no_write:
        print(f"wrote {write_results('load_server', result)}")
    if load.errors or not audit["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
