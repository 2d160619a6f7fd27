"""What a governed search costs over the bare index search it contains, on each database.

Run: .venv/bin/python bench/governed_overhead.py [--gallery 200] [--probes 40]
    [--databases sqlite,postgresql]

On each database in turn, the same measurement, and PostgreSQL's overhead over SQLite's
(issue 13: at most 2x). SQLite: the workspace's own file, synchronous = FULL. PostgreSQL:
a throw-away cluster the bench starts itself (bench/_postgres.py: a Unix socket, and
PostgreSQL's durable defaults, so a commit waits for its flush as SQLite's does; the
tests' fsync-off settings with --pg-fast).

An evaluation workspace (tests/agency.py: two admins, the two-reviewers example policy
with its quotas raised so the run is not refused) gets `--gallery` lfw-dev people
enrolled through the workflow. Each probe photo (a second photo of an enrolled person)
is read once beforehand, so its face detection and template sit in the workflow's probe
cache: what is timed is the policy decision, the request and result rows, the audit
entries, the threshold lookup and the index search, i.e. everything `request_search`
does beyond reading the photo. The bare figure is `workflow.index.search` of the same
probe template, in the same run. Writes bench/results/governed_overhead.json.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results
from _postgres import BenchCluster, PostgresUnavailableError
from candor.workflow import EnrolmentRequest, RequestForm, enrol_files, request_search
from candor.workflow.probes import probe_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.agency import make_agency, policy_file
from tests.workflow.test_governed import FORM, PROVENANCE


def percentiles(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1e3
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
    }


def measure(
    people: list[Path], args: argparse.Namespace, database_url: str | None
) -> dict[str, Any]:
    """The governed and the bare search of the same probes on one workspace."""
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        agency = make_agency(home, database_url=database_url)
        agency.set_policy(
            policy_file(
                home,
                "two-reviewers",
                source_type="evaluation",
                per_user_per_day="per_user_per_day = 100000",
                per_user_per_30_days="per_user_per_30_days = 100000",
            )
        )
        workflow = agency.workflow
        requests = [EnrolmentRequest(sorted(p.glob("*.jpg"))[0], p.name) for p in people]
        enrol_files(workflow, agency["admin1"], requests, PROVENANCE, workers=2)
        probes = [sorted(p.glob("*.jpg"))[1] for p in people[: args.probes]]
        templates = [probe_for(workflow, path, 0).template.vector for path in probes]
        form: RequestForm = FORM
        request_search(workflow, agency["ana"], probes[0], form, face_index=0)  # warm-up
        governed: list[float] = []
        bare: list[float] = []
        statuses: dict[str, int] = {}
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        for path, vector in zip(probes[1:], templates[1:], strict=True):
            started = time.perf_counter()
            outcome = request_search(workflow, agency["ana"], path, form, face_index=0)
            governed.append(time.perf_counter() - started)
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
            started = time.perf_counter()
            workflow.index.search(vector, 20)
            bare.append(time.perf_counter() - started)
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        gallery = len(workflow.index)
        workflow.close()
    return {
        "gallery_templates": gallery,
        "searches": len(governed),
        "governed_request_search": percentiles(governed),
        "bare_index_search": percentiles(bare),
        "overhead_p50_ms": round(float(np.median(governed) - np.median(bare)) * 1e3, 3),
        "statuses": statuses,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def on_database(name: str, people: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    if name == "sqlite":
        described = "SQLite (the workspace's own file, synchronous = FULL)"
        return {"database": described, **measure(people, args, None)}
    try:
        cluster = BenchCluster(durable=not args.pg_fast).start()
    except PostgresUnavailableError as error:
        return {"available": False, "why": f"not available: {error}"}
    try:
        return {
            "database": cluster.described(),
            **measure(people, args, cluster.new_database()),
        }
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=200)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument(
        "--faces", default=str(Path(__file__).resolve().parents[2] / "shared/faces")
    )
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-fast", action="store_true", help="PostgreSQL without fsync, as in the tests"
    )
    parser.add_argument("--name", default="governed_overhead", help="results file name")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    args = parser.parse_args()
    people = [
        folder
        for folder in sorted((Path(args.faces) / "lfw-dev").iterdir())
        if len(list(folder.glob("*.jpg"))) >= 2
    ][: args.gallery]
    databases = {name: on_database(name, people, args) for name in args.databases.split(",")}
    result: dict[str, Any] = {
        "description": __doc__.split("\n\n")[3].replace("\n", " "),
        "databases": databases,
    }
    sqlite, postgres = databases.get("sqlite", {}), databases.get("postgresql", {})
    if "overhead_p50_ms" in sqlite and "overhead_p50_ms" in postgres:
        ratio = postgres["overhead_p50_ms"] / sqlite["overhead_p50_ms"]
        result["postgresql_over_sqlite_overhead"] = round(ratio, 2)
        result["target"] = "PostgreSQL's overhead at most 2x SQLite's"
        result["target_met"] = ratio <= 2.0
    print(json.dumps(result, indent=2))
    if not args.no_write:
        write_results(args.name, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
