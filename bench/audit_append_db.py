"""Audit append rate through the database: `record` in its own transaction per entry.

This is the rate the workflow can log actions at on the embedded store (SQLite, WAL,
synchronous=FULL, secure_delete), automatic signed checkpoints every 100 entries
included. The pure in-memory rates and the verification rate are in bench/audit_log.py.
Writes bench/results/audit_append_db.json.

    .venv/bin/python bench/audit_append_db.py [--entries 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from candor.workflow.audit_trail import record
from candor.workflow.workspaces import create_workspace

RESULTS = Path(__file__).resolve().parent / "results" / "audit_append_db.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workspace = create_workspace(Path(scratch) / "ws", purpose="benchmark")
        details = {
            "offence_category": "robbery",
            "purpose": "investigative_lead",
            "requesting_agency": "Example City Police Department",
            "probe_sha256": "ab" * 32,
        }
        started = time.perf_counter()
        for number in range(args.entries):
            with workspace.session() as session, session.begin():
                record(
                    session,
                    workspace,
                    "analyst1",
                    "search.requested",
                    {"search": number, "case": "2026-000123"},
                    details,
                )
        seconds = time.perf_counter() - started
        workspace.close()
    result = {
        "what": "audit entries appended through candor.workflow.audit_trail.record, "
        "one SQLite transaction each, automatic checkpoints every 100 entries",
        "entries": args.entries,
        "seconds": round(seconds, 2),
        "entries_per_second": round(args.entries / seconds, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": datetime.now(UTC).date().isoformat(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
