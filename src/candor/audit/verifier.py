"""Verify a Candor audit export: `python -m candor.audit.verifier EXPORT_DIR [--against NOTE ...]`.

An outside auditor runs this with Python and `cryptography` alone; it imports nothing
else beyond the standard library and the candor.audit modules that obey the same rule.
Exit status: 0 when the export verifies, 1 when it does not, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from candor.audit.verification import (
    VerificationReport,
    verify_chain,
    verify_entries,
    verify_export,
)

__all__ = ["VerificationReport", "main", "verify_chain", "verify_entries", "verify_export"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the verifier on an export folder; print the report; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m candor.audit.verifier",
        description="Verify a Candor audit export (entries, signed checkpoints, verifier key).",
    )
    parser.add_argument("export", type=Path, help="the export folder")
    parser.add_argument(
        "--against",
        type=Path,
        nargs="+",
        default=[],
        metavar="NOTE",
        help="checkpoint notes you kept from earlier exports; the log must agree with each",
    )
    arguments = parser.parse_args(argv)
    report = verify_export(arguments.export, arguments.against)
    print(f"Candor audit export: {arguments.export}")
    print(report.summary())
    # An export holds no tables: say so, lest an OK read as "the database is sound".
    print(
        "scope: this proves the log only (entries, chain, signed checkpoints); it cannot "
        "see the workspace's tables, which `candor audit verify` reconciles with the log"
    )
    if report.ok and not arguments.against:
        print(
            "note: no held checkpoints given; a history rewritten and re-signed with the "
            "log's key is only caught against checkpoints you kept (--against)"
        )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
