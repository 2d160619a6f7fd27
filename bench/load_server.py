"""The service under load: one gallery, every server configuration, one run.

Run (the full configuration of issue 13; about 25 minutes on a quiet 2-core machine):
    .venv/bin/python bench/load_server.py
Trial (small settings; writes bench/results/load_server_trial.*):
    .venv/bin/python bench/load_server.py --gallery 2000 --seconds 8 --job-photos 60 \\
        --name load_server_trial

What it does, on this machine only (127.0.0.1 and Unix sockets; nothing else is contacted):

1. Per database (SQLite, and PostgreSQL on a throw-away cluster the bench starts itself,
   bench/_postgres.py: initdb in a temporary folder, a Unix socket, PostgreSQL's durable
   defaults unless --pg-fast): a new `benchmark` workspace with two admins, analysts,
   examiners and auditors, a benchmark policy derived from the two-reviewers example
   (below), and the same gallery of `--gallery` synthetic templates (the bulk synthetic
   loader, seed 5: both databases hold the same templates). No face of a real person is
   in the gallery.
2. (a) `--clients` API clients searching for `--seconds`, against `candor serve` run as
   one process under one lock (`--one-lock`, today's design, the baseline) and with
   `--workers 2`, on each database (one node): throughput, p50, p99, errors; then the
   audit log of that window: exactly search.requested, policy.decided and search.run per
   answered request, one auth.login per client, nothing else.
3. (c) PostgreSQL, two nodes (two `candor serve` on two ports, one database): a subject
   enrolled through node A (POST /api/gallery/enrolments) is among the candidates of the
   next search through node B; expunged (by `candor expunge`, a third process: the server
   has no expunge route), it is never among the candidates of a search through node A.
   Run before (b), so no enrolment job has put other faces like it in the gallery.
4. (b) Mixed load: analysts searching, examiners reviewing (their queue, a candidate list,
   a verdict), auditors reading the usage report; first on the idle service (no job),
   then with one bulk enrolment job running throughout (`candor enrol --background`,
   run by the job runner `candor serve` starts), on one node with SQLite and on two
   nodes with PostgreSQL (clients split over the nodes): per-operation p50/p99,
   throughput, errors, and search p50 with the job against without it, same run. The
   audit check: every answered operation's own entries, besides them only the job's.

A configuration whose feature has not landed (`candor serve --workers`, `--one-lock`,
`candor enrol --background`) is recorded as "not available" with the reason; where the
job cannot run in the background, a foreground `candor enrol` in its own process stands
in for it, and the results say so.

The benchmark policy "allows repeats" as far as the policy schema lets it: the repeat rule
(same probe sha256, or a probe template at or above `repeat.similarity` to one searched
within `repeat.window_days`) sends a repeat to a supervisor, and the schema requires
window_days >= 1 and similarity < 1. So the policy sets window_days = 1 and similarity =
0.9999, quotas far above what a run can reach, and every search sends a probe photo of
its own (candor.workflow.demo_photos.probe_variants: distinct crops, scales and exposures
of the demo portraits), handed out once per workspace across all its configurations.

Writes bench/results/<name>.json and <name>.md (a short table) and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from _common import RESULTS_DIR, write_results
from candor.audit.canonical import parse_entry
from candor.cli.accounts import save_token
from candor.policy import example_policy_path
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
from candor.workflow.demo_photos import probe_variants, save_photos
from candor.workflow.workspaces import create_workspace

try:  # the synthetic loader is moving out of workflow/ (issue 13, item 1)
    from candor.simulation.synthetic import load_synthetic_gallery
except ImportError:
    from candor.simulation.synthetic import load_synthetic_gallery

from _postgres import BenchCluster, PostgresUnavailableError

PASSWORD = "benchmark password, loopback only"
CLIENTS = 16
SECONDS = 60.0
GALLERY = 100_000
PROBES = 3000
JOB_PHOTOS = 1500
# The mixed load's 16 clients: who does what (analysts search, examiners review, auditors
# read the usage report), like a unit at work.
MIX = {"search": 10, "review": 4, "report": 2}
PER_SEARCH = ("search.requested", "policy.decided", "search.run")
# Audit entries each answered operation of the mixed load adds (besides its search's).
PER_OPERATION = {
    "login": "auth.login",
    "review.candidates": "candidates.viewed",
    "review.verdict": "candidate.verdict",
    "report": "report.generated",
}
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
PROVENANCE = {
    "source_type": "benchmark",
    "source_ref": "BENCH-LOAD",
    "legal_basis": "benchmark data, no real person",
    "collected_on": date.today().isoformat(),
    "retain_until": (date.today() + timedelta(days=30)).isoformat(),
}
BASELINE = "one-lock"
WORKERS = "workers-2"


# -- the workspace ---------------------------------------------------------------------------


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


def staff(clients: int) -> list[tuple[str, str, str]]:
    """(username, role, unit) of everyone besides the two admins."""
    people = [(f"analyst{n:02d}", "analyst", "Robbery") for n in range(clients)]
    people += [(f"examiner{n:02d}", "examiner", "Forensics") for n in range(MIX["review"])]
    people += [(f"auditor{n:02d}", "auditor", "Oversight") for n in range(MIX["report"])]
    return people


def set_up(home: Path, gallery: int, clients: int, database_url: str | None) -> dict[str, Any]:
    """The workspace, its people, policy and synthetic gallery; timings of each step."""
    started = time.perf_counter()
    workspace = create_workspace(home, purpose="benchmark", database_url=database_url)
    workflow = Workflow(workspace)
    try:
        bootstrap(workflow, user("admin1", "admin", "Records"), user("admin2", "admin", "Records"))
        admin1 = authenticate(workflow, login(workflow, "admin1", PASSWORD).token)
        admin2 = authenticate(workflow, login(workflow, "admin2", PASSWORD).token)
        change = request_policy_change(workflow, admin1, benchmark_policy(home.parent))
        confirm_change(workflow, admin2, change.id)
        for name, role, unit in staff(clients):
            change = request_user(workflow, admin1, user(name, role, unit))
            confirm_change(workflow, admin2, change.id)
        people = time.perf_counter()
        loaded = load_synthetic_gallery(workflow, admin1, subjects=gallery, seed=5, prefix="BENCH")
        done = time.perf_counter()
        # The CLI (enrolment job, expunge) acts as admin1, as after `candor login`.
        save_token(home, login(workflow, "admin1", PASSWORD).token)
    finally:
        workflow.close()
    return {
        "people_and_policy_s": round(people - started, 1),
        "gallery_load_s": round(done - people, 1),
        "gallery_templates": loaded.templates,
        "model": loaded.model,
    }


def jpeg(picture: Any) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


class Probes:
    """Distinct probe photos, each handed out once in a workspace (the repeat rule)."""

    def __init__(self, photos: list[bytes]) -> None:
        self.photos = photos
        self.used = 0

    def take(self) -> bytes | None:
        if self.used >= len(self.photos):
            return None
        self.used += 1
        return self.photos[self.used - 1]


# -- the servers -----------------------------------------------------------------------------


def candor(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    if home is not None:
        env["CANDOR_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "candor", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@dataclass(frozen=True)
class Features:
    """What of issue 13 has landed, read from the commands' own help."""

    one_lock: bool
    workers: bool
    background: bool
    jobs: bool

    @classmethod
    def detect(cls) -> Features:
        serve = candor("serve", "--help").stdout
        enrol = candor("enrol", "--help").stdout
        return cls(
            one_lock="--one-lock" in serve,
            workers="--workers" in serve,
            background="--background" in enrol,
            jobs=candor("jobs", "--help").returncode == 0,
        )

    def mode_flags(self, mode: str) -> list[str] | str:
        """`candor serve`'s options for a mode, or why the mode is not available."""
        if mode == BASELINE:
            # Before --one-lock landed, plain `candor serve` was one process under one lock.
            return ["--one-lock"] if self.one_lock else []
        if not self.workers:
            return "not available: `candor serve --workers` has not landed"
        return ["--workers", "2"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Node:
    """One `candor serve` (with its workers) on a free loopback port."""

    def __init__(self, home: Path, flags: list[str], log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "CANDOR_HOME": str(home)}
        command = [sys.executable, "-m", "candor", "serve", "--port", str(self.port)]
        with log.open("ab") as output:
            # Its own process group, so stopping it stops its workers and job runner too.
            self.process = subprocess.Popen(
                [*command, "--idle-minutes", "600", *flags],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_until_up(self, limit: float = 180) -> float:
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=self.base) as client:
            while time.perf_counter() - started < limit:
                if self.process.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"the server exited with {self.process.returncode}: {tail}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/api/status")).status_code == 200:
                        return time.perf_counter() - started
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {limit:.0f} s")

    def log_tail(self) -> str:
        """The server's last messages other than its access log (a worker killed, a trace)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if '" 200 OK' not in line)[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


@contextlib.contextmanager
def nodes(home: Path, flags: list[str], count: int) -> Iterator[tuple[list[Node], float]]:
    started = [Node(home, flags, home.parent / f"serve-{n}.log") for n in range(count)]
    try:

        async def up() -> list[float]:
            return list(await asyncio.gather(*(node.wait_until_up() for node in started)))

        yield started, max(asyncio.run(up()))
    finally:
        for node in started:
            node.stop()


# -- the clients -----------------------------------------------------------------------------


@dataclass
class Stats:
    """What the clients of one phase saw. Logins and each searcher's first search (which
    loads the engine and index in a fresh worker) happen before the timed window opens:
    they count for the audit check, not for latency or throughput."""

    clients: int
    seconds: float
    ready: int = 0
    go: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = 0.0
    deadline: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    answered: Counter[str] = field(default_factory=Counter)
    timed: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    error_counts: Counter[str] = field(default_factory=Counter)
    search_ids: list[int] = field(default_factory=list)
    timed_searches: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def error(self, operation: str, text: str) -> None:
        self.error_counts[operation] += 1
        self.errors.append(f"{operation}: {text[:200]}")

    async def start(self) -> None:
        """Wait until every client has logged in and warmed up; then the window opens."""
        self.ready += 1
        if self.ready == self.clients:
            self.started = time.perf_counter()
            self.deadline = self.started + self.seconds
            self.go.set()
        await self.go.wait()

    def open(self) -> bool:
        return self.go.is_set() and time.perf_counter() < self.deadline

    async def call(
        self, client: httpx.AsyncClient, operation: str, method: str, url: str, **kwargs: Any
    ) -> Any | None:
        """One request, timed once the window is open; its JSON when answered 200, else
        None (counted as an error)."""
        timed = self.go.is_set()
        sent = time.perf_counter()
        try:
            answer = await client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            self.error(operation, f"{type(error).__name__}: {error}")
            return None
        if timed:
            self.latencies.setdefault(operation, []).append(time.perf_counter() - sent)
        if not answer.is_success:
            self.error(operation, f"{answer.status_code} {answer.text}")
            return None
        self.answered[operation] += 1
        if timed:
            self.timed[operation] += 1
        return answer.json()


async def logged_in(client: httpx.AsyncClient, name: str, stats: Stats) -> bool:
    """Log in; a refusal (e.g. 503, the database busy) is counted as an error and tried
    again, as a person would, so that one busy moment does not silence a client."""
    credentials = {"username": name, "password": PASSWORD}
    for _ in range(3):
        body = await stats.call(client, "login", "POST", "/api/login", json=credentials)
        if body is not None:
            client.headers["Authorization"] = f"Bearer {body['token']}"
            return True
        await asyncio.sleep(1.0)
    return False


def new_client(base: str) -> httpx.AsyncClient:
    # A new connection per request: uvicorn closes a connection idle for 5 s, and a client
    # waiting at the start (or for the review queue) would send into a closing one and
    # count a RemoteProtocolError that no user of a browser, which retries, would see.
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(300.0), limits=limits)


async def search_once(client: httpx.AsyncClient, name: str, stats: Stats, probes: Probes) -> bool:
    probe = probes.take()
    if probe is None:
        stats.error("search", f"{name}: ran out of distinct probes (raise --probes)")
        return False
    files = {"probe": ("probe.jpg", probe, "image/jpeg")}
    timed = stats.go.is_set()
    outcome = await stats.call(client, "search", "POST", "/api/searches", data=CASE, files=files)
    if outcome is not None:
        stats.search_ids.append(int(outcome["search_id"]))
        stats.outcomes[str(outcome["status"])] += 1
        stats.timed_searches += timed
    return True


async def searcher(base: str, name: str, stats: Stats, probes: Probes) -> None:
    async with new_client(base) as client:
        if await logged_in(client, name, stats):
            await search_once(client, name, stats, probes)  # warm-up, untimed
        await stats.start()
        while stats.open() and "Authorization" in client.headers:
            if not await search_once(client, name, stats, probes):
                return


async def reviewer(base: str, name: str, stats: Stats) -> None:
    """An examiner: the queue, then a candidate list not yet reviewed, a verdict on its first."""
    reviewed: set[int] = set()
    async with new_client(base) as client:
        signed_in = await logged_in(client, name, stats)
        await stats.start()
        while signed_in and stats.open():
            queue = await stats.call(client, "review.queue", "GET", "/api/reviews")
            waiting = [
                item["search_id"]
                for item in (queue or {}).get("items", [])
                if item["search_id"] not in reviewed
            ]
            if not waiting:
                await asyncio.sleep(0.5)  # nothing new to review yet
                continue
            search_id = waiting[0]
            reviewed.add(search_id)
            url = f"/api/requests/{search_id}/candidates"
            review = await stats.call(client, "review.candidates", "GET", url)
            if not review or not review["candidates"]:
                continue
            rank = review["candidates"][0]["rank"]
            verdict = {"verdict": "not_a_match", "rationale": "benchmark: not the person sought"}
            await stats.call(
                client, "review.verdict", "POST", f"{url}/{rank}/verdict", json=verdict
            )


async def reporter(base: str, name: str, stats: Stats) -> None:
    async with new_client(base) as client:
        signed_in = await logged_in(client, name, stats)
        await stats.start()
        while signed_in and stats.open():
            await stats.call(client, "report", "GET", "/api/reports/usage")


async def run_phase(
    bases: list[str], mix: dict[str, int], probes: Probes, seconds: float
) -> tuple[Stats, float]:
    """The clients of `mix`, spread over the nodes in turn, for `seconds` once all are in."""
    stats = Stats(clients=sum(mix.values()), seconds=seconds)
    clients = []
    number = 0
    for kind, count in mix.items():
        for n in range(count):
            base = bases[number % len(bases)]
            number += 1
            if kind == "search":
                clients.append(searcher(base, f"analyst{n:02d}", stats, probes))
            elif kind == "review":
                clients.append(reviewer(base, f"examiner{n:02d}", stats))
            else:
                clients.append(reporter(base, f"auditor{n:02d}", stats))
    await asyncio.gather(*clients)
    # Requests still in flight when the window closed are awaited and counted.
    return stats, time.perf_counter() - stats.started


# -- the audit log ---------------------------------------------------------------------------


def audit_entries_after(home: Path, seq: int) -> list[dict[str, Any]]:
    """Every audit entry after `seq`, parsed from its canonical bytes."""
    # Read straight from the store, with no engine loaded and nothing written.
    workspace = Workspace.open(home)
    try:
        with workspace.session() as session:
            rows = session.scalars(select(AuditEntry).where(AuditEntry.seq > seq)).all()
            return [dict(parse_entry(row.body)) for row in rows]
    finally:
        workspace.close()


def last_seq(home: Path) -> int:
    workspace = Workspace.open(home)
    try:
        with workspace.session() as session:
            rows = session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
            return int(rows.first() or 0)
    finally:
        workspace.close()


def check_audit(entries: list[dict[str, Any]], stats: Stats, job: bool) -> dict[str, Any]:
    """Exactly three entries per answered search, one per other answered operation; besides
    them only the enrolment job's entries (when a job ran)."""
    per_search: dict[int, list[str]] = {}
    others: Counter[str] = Counter()
    for entry in entries:
        search = entry["objects"].get("search")
        if isinstance(search, int) and entry["action"] in PER_SEARCH:
            per_search.setdefault(search, []).append(entry["action"])
        else:
            others[entry["action"]] += 1
    wrong = [s for s, actions in per_search.items() if sorted(actions) != sorted(PER_SEARCH)]
    unexplained = set(per_search) - set(stats.search_ids)
    missing = set(stats.search_ids) - set(per_search)
    expected = Counter(
        {PER_OPERATION[op]: n for op, n in stats.answered.items() if op in PER_OPERATION}
    )
    operations = Counter({action: others[action] for action in PER_OPERATION.values()})
    beyond = others - operations
    requests_answered = sum(stats.answered.values())
    return {
        "entries": len(entries),
        "requests_answered": requests_answered,
        "searches_answered": len(stats.search_ids),
        "searches_with_exactly_their_three_entries": len(per_search) - len(wrong),
        "searches_with_other_entries": len(wrong),
        "entries_for_unanswered_searches": len(unexplained),
        "answered_searches_without_entries": len(missing),
        "operation_entries": dict(operations),
        "expected_operation_entries": dict(expected),
        "other_entries": dict(beyond),
        "ok": not wrong
        and not unexplained
        and not missing
        and +operations == +expected
        and (job or not beyond),
    }


# -- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def latency(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50_s": round(percentile(values, 0.50), 3),
        "p99_s": round(percentile(values, 0.99), 3),
        "mean_s": round(statistics.fmean(values), 3),
        "max_s": round(max(values), 3),
    }


def figures(stats: Stats, elapsed: float) -> dict[str, Any]:
    operations = {
        op: {
            "answered": stats.timed[op],
            "errors": stats.error_counts[op],
            "per_s": round(stats.timed[op] / elapsed, 2),
            "latency": latency(values),
        }
        for op, values in sorted(stats.latencies.items())
    }
    return {
        "elapsed_s": round(elapsed, 2),
        "requests_in_window": sum(stats.timed.values()),
        "throughput_per_s": round(sum(stats.timed.values()) / elapsed, 2),
        "searches_per_s": round(stats.timed_searches / elapsed, 2),
        "errors": sum(stats.error_counts.values()),
        "error_samples": stats.errors[:5],
        "search_outcomes": dict(stats.outcomes),
        "operations": operations,
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
    }


# -- (a) 16 clients searching ----------------------------------------------------------------


def searching(
    home: Path, features: Features, mode: str, probes: Probes, options: argparse.Namespace
) -> dict[str, Any]:
    flags = features.mode_flags(mode)
    if isinstance(flags, str):
        return {"available": False, "why": flags}
    before = last_seq(home)
    with nodes(home, flags, 1) as (started, startup):
        print(f"  {mode}: up in {startup:.1f} s; {options.clients} clients searching", flush=True)
        stats, elapsed = asyncio.run(
            run_phase([started[0].base], {"search": options.clients}, probes, options.seconds)
        )
        logs = started[0].log_tail() if stats.errors else None
    result = {
        "available": True,
        "serve_flags": flags,
        "server_start_s": round(startup, 1),
        **figures(stats, elapsed),
        "server_log_tail_when_errors": logs,
        "audit": check_audit(audit_entries_after(home, before), stats, job=False),
    }
    if mode == BASELINE and not features.one_lock:
        result["note"] = "plain `candor serve`: --one-lock has not landed, one lock is the design"
    return result


# -- (b) mixed load with a bulk enrolment job ------------------------------------------------


def job_folder(root: Path, count: int) -> Path:
    """One folder per made-up subject (JOB-00000...), one demo-portrait variant in each."""
    folder = root / "job-photos"
    if not folder.exists():
        for number, picture in enumerate(probe_variants(count, seed=23).values()):
            save_photos({"photo.jpg": picture}, folder / f"JOB-{number:05d}")
    return folder


def enrol_args(folder: Path) -> list[str]:
    return [
        "enrol",
        str(folder),
        "--from-folders",
        "--source",
        PROVENANCE["source_type"],
        "--source-ref",
        PROVENANCE["source_ref"],
        "--legal-basis",
        PROVENANCE["legal_basis"],
        "--collected",
        PROVENANCE["collected_on"],
        "--retain-until",
        PROVENANCE["retain_until"],
    ]


class Job:
    """The bulk enrolment running throughout: a background job, or a stand-in process."""

    def __init__(self, home: Path, folder: Path, features: Features, prefix: str) -> None:
        self.home = home
        self.id: str | None = None
        self.stand_in: subprocess.Popen[bytes] | None = None
        self.waited_s = 0.0
        self.progress_at_start: dict[str, Any] = {}
        # Each phase enrols its own subjects: a second job over the same folder would skip
        # every photo as already enrolled.
        self.folder = home.parent / f"job-{prefix}"
        if not self.folder.exists():
            self.folder.symlink_to(folder)
        if features.background:
            done = candor(*enrol_args(self.folder), "--background", "--json", home=home)
            if done.returncode != 0:
                raise RuntimeError(f"candor enrol --background: {done.stdout} {done.stderr}")
            self.queued = done.stdout.strip()[-2000:]
            with contextlib.suppress(ValueError, AttributeError):
                body = json.loads(done.stdout)
                job = body.get("job", body)
                self.id = str(job.get("id", job.get("job_id")))
            self.kind = "background job (candor enrol --background, run by candor serve's runner)"
        else:
            self.queued = ""
            env = {**os.environ, "CANDOR_HOME": str(home)}
            self.stand_in = subprocess.Popen(
                [sys.executable, "-m", "candor", *enrol_args(self.folder), "--workers", "1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.kind = (
                "not available: `candor enrol --background` has not landed; stand-in: a "
                "foreground `candor enrol --workers 1` in its own process"
            )

    def show(self) -> dict[str, Any]:
        """The job's state and progress (`candor jobs show --json`)."""
        if self.id is None:
            return {}
        shown = candor("jobs", "show", self.id, "--json", home=self.home)
        try:
            job = json.loads(shown.stdout)["job"]
        except (ValueError, KeyError, TypeError):
            return {"unreadable": (shown.stdout + shown.stderr).strip()[-500:]}
        keys = ("state", "total", "done", "refused", "left", "rate", "error")
        return {key: job.get(key) for key in keys}

    def wait_until_running(self, limit: float = 90) -> None:
        """Let the phase start only once the runner has claimed the job."""
        started = time.perf_counter()
        while self.id is not None and time.perf_counter() - started < limit:
            self.progress_at_start = self.show()
            if self.progress_at_start.get("state") != "queued":
                break
            time.sleep(0.5)
        self.waited_s = round(time.perf_counter() - started, 1)

    def stop(self) -> dict[str, Any]:
        report: dict[str, Any] = {"kind": self.kind, "job_id": self.id}
        if self.stand_in is not None:
            report["finished_during_phase"] = self.stand_in.poll() is not None
            if self.stand_in.poll() is None:
                os.killpg(self.stand_in.pid, signal.SIGTERM)
                self.stand_in.wait(timeout=60)
        elif self.id is not None:
            report["waited_for_runner_s"] = self.waited_s
            report["progress_at_start"] = self.progress_at_start
            report["progress_at_end"] = self.show()
            report["finished_during_phase"] = report["progress_at_end"].get("state") != "running"
            cancelled = candor("jobs", "cancel", self.id, home=self.home)
            report["cancelled"] = cancelled.returncode == 0
        else:
            report["queued_output"] = self.queued
        return report


def mixed(
    home: Path,
    features: Features,
    count: int,
    probes: Probes,
    folder: Path,
    options: argparse.Namespace,
) -> dict[str, Any]:
    flags = features.mode_flags(WORKERS)
    if isinstance(flags, str):
        flags = features.mode_flags(BASELINE)
        assert isinstance(flags, list)
    result: dict[str, Any] = {"available": True, "nodes": count, "serve_flags": flags}
    with nodes(home, flags, count) as (started, startup):
        bases = [node.base for node in started]
        result["server_start_s"] = round(startup, 1)
        for phase in ("idle", "with_job"):
            before = last_seq(home)
            job = None
            if phase == "with_job":
                job = Job(home, folder, features, prefix=f"{count}-{phase}")
                job.wait_until_running()
            print(f"  {count} node(s), mixed load, {phase}", flush=True)
            stats, elapsed = asyncio.run(run_phase(bases, MIX, probes, options.seconds))
            job_report = job.stop() if job is not None else None
            entries = audit_entries_after(home, before)
            result[phase] = {
                **figures(stats, elapsed),
                "server_log_tails_when_errors": [n.log_tail() for n in started]
                if stats.errors
                else None,
                "audit": check_audit(entries, stats, job=job is not None),
            }
            if job_report is not None:
                result[phase]["job"] = job_report
    idle = result["idle"]["operations"].get("search", {}).get("latency")
    busy = result["with_job"]["operations"].get("search", {}).get("latency")
    if idle and busy:
        result["search_p50_with_job_over_idle"] = round(busy["p50_s"] / idle["p50_s"], 2)
    return result


# -- (c) two nodes kept in step --------------------------------------------------------------


async def two_node_check(a: str, b: str, home: Path) -> dict[str, Any]:
    """Enrol through A, search through B; expunge (asked by a third process, confirmed by a
    second admin through B), search through A."""
    photos = [jpeg(p) for p in probe_variants(6, seed=97).values()]
    enrolled, probe_b, probe_a = photos[0], photos[2], photos[4]  # three Collins variants
    reference = f"NODECHECK-{os.getpid()}"
    stats = Stats(clients=1, seconds=0)
    async with (
        new_client(a) as admin_a,
        new_client(b) as admin_b,
        new_client(b) as analyst_b,
        new_client(b) as examiner_b,
        new_client(a) as analyst_a,
        new_client(a) as examiner_a,
    ):
        for client, name in (
            (admin_a, "admin1"),
            (admin_b, "admin2"),
            (analyst_b, "analyst00"),
            (examiner_b, "examiner00"),
            (analyst_a, "analyst01"),
            (examiner_a, "examiner01"),
        ):
            if not await logged_in(client, name, stats):
                return {"ok": False, "errors": stats.errors}
        form = {**PROVENANCE, "subject_ref": reference}
        files = {"photos": ("enrol.jpg", enrolled, "image/jpeg")}
        enrolment = await stats.call(
            admin_a, "enrol", "POST", "/api/gallery/enrolments", data=form, files=files
        )

        async def candidates(
            analyst: httpx.AsyncClient, examiner: httpx.AsyncClient, probe: bytes
        ) -> list[dict[str, Any]]:
            files = {"probe": ("probe.jpg", probe, "image/jpeg")}
            outcome = await stats.call(
                analyst, "search", "POST", "/api/searches", data=CASE, files=files
            )
            if outcome is None:
                return []
            url = f"/api/requests/{outcome['search_id']}/candidates"
            review = await stats.call(examiner, "candidates", "GET", url)
            return list(review["candidates"]) if review else []

        found_b = await candidates(analyst_b, examiner_b, probe_b)
        hit = [c for c in found_b if c["subject_ref"] == reference]
        # Expungement is an admin change: admin1 asks (the CLI), admin2 confirms (node B).
        expunged = candor(
            "expunge", reference, "--yes", "--reason", "bench: two nodes", "--json", home=home
        )
        confirmed = None
        if expunged.returncode == 0:
            change = json.loads(expunged.stdout)["change"]["id"]
            url = f"/api/changes/{change}/confirm"
            confirmed = await stats.call(admin_b, "confirm", "POST", url)
        found_a = await candidates(analyst_a, examiner_a, probe_a)
    subject_id = hit[0]["subject_id"] if hit else None
    returned_by_a = [
        c for c in found_a if c["subject_id"] == subject_id or c["subject_ref"] == reference
    ]
    return {
        "subject": reference,
        "enrolled_through_a": enrolment is not None,
        "found_by_b_next_search": bool(hit),
        "rank_at_b": hit[0]["rank"] if hit else None,
        "score_at_b": hit[0]["score"] if hit else None,
        "expunged_by": "candor expunge (a third process), confirmed by admin2 through B",
        "expunge_ok": expunged.returncode == 0 and confirmed is not None,
        "expunge_output": expunged.stdout.strip()[-500:] or expunged.stderr.strip()[-500:],
        "returned_by_a_after_expunge": bool(returned_by_a),
        "candidates_at_a": len(found_a),
        "errors": stats.errors,
        "ok": bool(hit)
        and expunged.returncode == 0
        and confirmed is not None
        and not returned_by_a
        and not stats.errors,
    }


def nodes_in_step(home: Path, features: Features) -> dict[str, Any]:
    flags = features.mode_flags(WORKERS)
    if isinstance(flags, str):
        flags = features.mode_flags(BASELINE)
        assert isinstance(flags, list)
    with nodes(home, flags, 2) as (started, _):
        check = asyncio.run(two_node_check(started[0].base, started[1].base, home))
    print(f"  two nodes in step: {'ok' if check['ok'] else 'FAILED'}: {check}", flush=True)
    return {"serve_flags": flags, **check}


# -- the run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def database(name: str, durable: bool) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(URL or None for SQLite, description); a PostgreSQL cluster lives for the block."""
    if name == "sqlite":
        yield None, {"database": "SQLite (the workspace's own file, synchronous = FULL)"}
        return
    cluster = BenchCluster(durable=durable).start()
    try:
        yield cluster.new_database(), {"database": cluster.described()}
    finally:
        cluster.stop()


def run_database(
    name: str, folder: Path, features: Features, photos: list[bytes], options: argparse.Namespace
) -> dict[str, Any]:
    root = folder / name
    root.mkdir()
    home = root / "ws"
    try:
        context = database(name, durable=not options.pg_fast)
        url, described = context.__enter__()
    except PostgresUnavailableError as error:
        return {"available": False, "why": f"not available: {error}"}
    try:
        print(f"{name}: setting up {options.gallery} templates", flush=True)
        setup = set_up(home, options.gallery, options.clients, url)
        print(f"{name}: {setup}", flush=True)
        probes = Probes(photos)
        result: dict[str, Any] = {**described, "setup": setup}
        if "a" in options.parts:
            result["searching"] = {
                mode: searching(home, features, mode, probes, options)
                for mode in (BASELINE, WORKERS)
            }
            base, workers = (result["searching"][m] for m in (BASELINE, WORKERS))
            if base.get("available") and workers.get("available"):
                result["searching"]["workers_2_over_one_lock"] = {
                    "throughput": round(workers["searches_per_s"] / base["searches_per_s"], 2)
                    if base["searches_per_s"]
                    else None,
                    "p50": round(
                        workers["operations"]["search"]["latency"]["p50_s"]
                        / base["operations"]["search"]["latency"]["p50_s"],
                        2,
                    )
                    if workers["searches_per_s"] and base["searches_per_s"]
                    else None,
                }
        if "c" in options.parts and name == "postgresql":
            result["two_nodes_in_step"] = nodes_in_step(home, features)
        if "b" in options.parts:
            job_photos = job_folder(folder, options.job_photos)
            count = 2 if name == "postgresql" else 1
            result["mixed"] = mixed(home, features, count, probes, job_photos, options)
        result["probes_used"] = probes.used
        return result
    finally:
        context.__exit__(None, None, None)


def table(result: dict[str, Any]) -> str:
    """A short markdown summary of the run."""
    lines = [
        f"# {result['benchmark_name']}: {result['gallery']} templates, {result['clients']} "
        f"clients, {result['seconds']:.0f} s per phase ({result['date']})",
        "",
        "| database | configuration | searches/s | search p50 s | search p99 s | errors | audit |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, db in result["databases"].items():
        if not db.get("available", True):
            lines.append(f"| {name} | - | {db['why']} | | | | |")
            continue
        rows: list[tuple[str, dict[str, Any]]] = []
        for mode, figures_ in db.get("searching", {}).items():
            if mode in (BASELINE, WORKERS):
                rows.append((f"16 searching, {mode}", figures_))
        mixed_ = db.get("mixed", {})
        for phase in ("idle", "with_job"):
            if phase in mixed_:
                rows.append((f"mixed, {mixed_['nodes']} node(s), {phase}", mixed_[phase]))
        for label, row in rows:
            if not row.get("available", True):
                lines.append(f"| {name} | {label} | {row['why']} | | | | |")
                continue
            search = row["operations"].get("search", {}).get("latency") or {}
            lines.append(
                f"| {name} | {label} | {row['searches_per_s']} | {search.get('p50_s', '-')} | "
                f"{search.get('p99_s', '-')} | {row['errors']} | "
                f"{'ok' if row['audit']['ok'] else 'MISMATCH'} |"
            )
    lines.append("")
    for name, db in result["databases"].items():
        ratio = db.get("searching", {}).get("workers_2_over_one_lock")
        if ratio:
            lines.append(
                f"- {name}: --workers 2 over --one-lock: throughput x{ratio['throughput']} "
                f"(target >= 1.8), p50 x{ratio['p50']} (target <= 0.6)"
            )
        if "search_p50_with_job_over_idle" in db.get("mixed", {}):
            lines.append(
                f"- {name}: search p50 with the job over idle: "
                f"x{db['mixed']['search_p50_with_job_over_idle']} (target <= 2)"
            )
        if "two_nodes_in_step" in db:
            check = db["two_nodes_in_step"]
            lines.append(
                f"- {name}: two nodes: enrolled via A found by B's next search: "
                f"{check['found_by_b_next_search']}; expunged, returned by A: "
                f"{check['returned_by_a_after_expunge']} ({'ok' if check['ok'] else 'FAILED'})"
            )
    lines.append(f"- features: {result['features']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gallery", type=int, default=GALLERY)
    parser.add_argument("--seconds", type=float, default=SECONDS, help="per load phase")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="searching clients in (a)")
    parser.add_argument("--probes", type=int, default=PROBES)
    parser.add_argument("--job-photos", type=int, default=JOB_PHOTOS, help="per job phase")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--parts", default="a,b,c", help="a: searching, b: mixed, c: two nodes")
    parser.add_argument("--name", default="load_server", help="results file name")
    parser.add_argument(
        "--pg-fast", action="store_true", help="PostgreSQL without fsync, as in the tests"
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    options = parser.parse_args()
    options.parts = set(options.parts.split(","))
    features = Features.detect()
    print(f"features: {features}", flush=True)
    photos = [jpeg(picture) for picture in probe_variants(options.probes, seed=11).values()]
    result: dict[str, Any] = {
        "benchmark_name": options.name,
        "date": date.today().isoformat(),
        "gallery": options.gallery,
        "clients": options.clients,
        "seconds": options.seconds,
        "mixed_clients": MIX,
        "features": {
            "serve --one-lock": features.one_lock,
            "serve --workers": features.workers,
            "enrol --background": features.background,
            "candor jobs": features.jobs,
        },
        "bind": "127.0.0.1 (loopback only)",
        "policy": "two-reviewers example with " + "; ".join(POLICY_LINES.values()),
        "probes": "distinct demo-portrait variants, each used once per workspace (seed 11)",
        "load_average_1_5_15_min_at_start": [round(v, 1) for v in os.getloadavg()],
        "databases": {},
    }
    with tempfile.TemporaryDirectory(prefix="candor-load-") as scratch:
        for name in options.databases.split(","):
            result["databases"][name] = run_database(name, Path(scratch), features, photos, options)
    result["load_average_1_5_15_min_at_end"] = [round(v, 1) for v in os.getloadavg()]
    print(json.dumps(result, indent=2))
    summary = table(result)
    print(summary)
    if not options.no_write:
        print(f"wrote {write_results(options.name, result)}")
        (RESULTS_DIR / f"{options.name}.md").write_text(summary, encoding="utf-8")


if __name__ == "__main__":
    main()
