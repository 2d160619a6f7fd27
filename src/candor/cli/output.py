"""How the CLI speaks: Rich tables for people, one JSON object for programs, errors on stderr.

With `--json`, standard output carries exactly one JSON object and nothing else;
progress bars, warnings and errors go to standard error.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False)


@contextmanager
def counted_progress(label: str, *, hidden: bool) -> Iterator[Callable[[int, int], None]]:
    """A transient bar on stderr for a job that reports (done, total) as it goes; hidden
    under --json. Yields the callback the job calls."""
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=hidden,
    )
    with bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def add_literal_row(table: Table, *cells: RenderableType) -> None:
    """Add a row whose text cells are shown as they are, never read as Rich markup.

    Case numbers, agency names, references and reasons come from people; a "[...]" in
    one must print as typed, not vanish as a style tag. Styled cells pass a Text.
    """
    table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def to_jsonable(value: Any) -> Any:
    """Dataclasses, paths, dates and enums as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: to_jsonable(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def emit_json(payload: dict[str, Any]) -> None:
    """Write the one JSON object of this command to standard output."""
    sys.stdout.write(json.dumps(to_jsonable(payload), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, *, as_json: bool, exit_code: int = 1, **extra: Any) -> NoReturn:
    """Report an error in one line (and as JSON when asked) and exit non-zero."""
    if as_json:
        emit_json({"ok": False, "error": message, **extra})
    # Plain text, never wrapped: one line that scripts and people can both read.
    sys.stderr.write(f"candor: error: {message}\n")
    raise typer.Exit(exit_code)


@contextmanager
def reported_errors(as_json: bool) -> Iterator[None]:
    """Turn Candor's typed errors into a one-line reason and exit status 1."""
    from candor.workflow import USER_ERRORS, MultipleFacesError

    try:
        yield
    except MultipleFacesError as error:
        if not as_json:
            from candor.cli.render import faces_table

            stderr.print(faces_table(error.faces))
        fail(error.choose("with --face N"), as_json=as_json, faces=error.faces)
    except USER_ERRORS as error:
        fail(_one_line(error), as_json=as_json)
    except OSError as error:
        fail(_one_line(error), as_json=as_json)


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())
