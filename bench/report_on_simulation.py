"""The usage report on a workspace made by `candor simulate` (a real simulated history).

bench/report_usage.py times the report on 10,000 searches written directly; this one
times it on whatever a `candor simulate` run produced, read-only, as an auditor's
library call would (no login: it measures the report, not the permission check).
Writes bench/results/report_on_simulation.json.

    candor init --home /tmp/sim --purpose simulation
    candor simulate --home /tmp/sim --searches 10000
    .venv/bin/python bench/report_on_simulation.py /tmp/sim
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from candor.reports import UsageQuery, usage_csv, usage_html, usage_json, usage_report
from candor.store import AuditEntry, SearchRequest, Workspace
from candor.workflow.audit_trail import log_keys

RESULTS = Path(__file__).resolve().parent / "results" / "report_on_simulation.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workspace = Workspace.open(args.workspace)
    with workspace.session() as session:
        searches = session.scalar(select(func.count()).select_from(SearchRequest)) or 0
        entries = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        first, last = session.execute(
            select(func.min(SearchRequest.created_at), func.max(SearchRequest.created_at))
        ).one()
    query = UsageQuery(
        date_from=first.astimezone(workspace.zone).date(),
        date_to=last.astimezone(workspace.zone).date(),
    )
    key = str(log_keys(workspace))
    runs = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        report = usage_report(workspace, key, query)
        usage_html(report)
        usage_csv(report)
        json.dumps(usage_json(report))
        runs.append(round(time.perf_counter() - started, 3))
    result = {
        "what": "usage report (verify, replay, reconcile, count, HTML with charts, CSV, JSON) "
        "over a workspace made by `candor simulate`",
        "searches": searches,
        "audit_entries": entries,
        "period": [query.date_from.isoformat(), query.date_to.isoformat()],
        "headline": report.headline if hasattr(report, "headline") else None,
        "seconds_per_run": runs,
        "target_seconds": 5,
        "load_average_1min": os.getloadavg()[0],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": datetime.now(UTC).date().isoformat(),
    }
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
