"""Options every command shares: the workspace folder and machine-readable output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="CANDOR_HOME",
        help="The workspace folder (default: $CANDOR_HOME).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON object on standard output.")
]
# A list read a page at a time (candor.workflow.paging): the same two options everywhere.
LimitOption = Annotated[
    int, typer.Option("--limit", min=1, max=200, help="Show at most N items (1 to 200).")
]
OffsetOption = Annotated[
    int, typer.Option("--offset", min=0, max=2**31 - 1, help="Skip the first N items.")
]
