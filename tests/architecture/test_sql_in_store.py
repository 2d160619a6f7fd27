"""Every SQL statement lives in a store repository: checked on the source, not trusted.

A module above the store (workflow, reports, cli, server, simulation, ...) that builds a
statement (sqlalchemy's select, insert, update, delete, text, func), runs one (.execute,
.scalar, .scalars, .query), or works the ORM session directly (session.get, .add,
.delete, .merge) is "still holding SQL". Those not yet moved are listed in STILL_HOLDING_SQL,
and the list may only shrink: a listed module that no longer holds SQL fails until it
is taken off, and a module not listed that starts to hold SQL fails at once.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "candor"

# Modules above the store that still hold SQL (issue 13: moved into store/ repositories
# one aggregate at a time). Take a module off once its SQL has moved; never add one.
STILL_HOLDING_SQL = {
    "workflow/accounts.py",
    "workflow/reenrol.py",
}

STATEMENT_BUILDERS = {"select", "insert", "update", "delete", "text", "func", "exists", "union"}
RUNNERS = {"execute", "scalar", "scalars", "query", "exec_driver_sql"}
SESSION_CALLS = {"get", "add", "add_all", "delete", "merge"}


def sql_uses(source: str, filename: str = "<source>") -> list[str]:
    """What in `source` is SQL, one line each (line number and what), empty if nothing."""
    tree = ast.parse(source, filename=filename)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sqlalchemy":
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            for alias in node.names:
                if alias.name in STATEMENT_BUILDERS:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, receiver = node.func.attr, node.func.value
            if method in RUNNERS:
                found.append((node.lineno, f".{method}(...)"))
            elif method in SESSION_CALLS and _names_a_session(receiver):
                found.append((node.lineno, f"session.{method}(...)"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def _names_a_session(node: ast.expr) -> bool:
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return isinstance(name, str) and name.lower().endswith("session")


def modules_above_the_store() -> list[Path]:
    return sorted(
        path
        for path in SOURCE.rglob("*.py")
        if path.parent != SOURCE and path.relative_to(SOURCE).parts[0] != "store"
    )


def label(path: Path) -> str:
    return path.relative_to(SOURCE).as_posix()


@pytest.mark.parametrize("module", modules_above_the_store(), ids=label)
def test_sql_stays_in_the_store(module: Path) -> None:
    uses = sql_uses(module.read_text(), str(module))
    if label(module) in STILL_HOLDING_SQL:
        assert uses, (
            f"{label(module)} holds no SQL any more: take it off STILL_HOLDING_SQL "
            "in tests/architecture/test_sql_in_store.py"
        )
    else:
        assert not uses, (
            f"{label(module)} holds SQL ({'; '.join(uses)}): move it into a repository "
            "function under candor/store/"
        )


def test_the_allow_list_names_only_existing_modules() -> None:
    existing = {label(path) for path in modules_above_the_store()}
    assert existing >= STILL_HOLDING_SQL, sorted(STILL_HOLDING_SQL - existing)


def test_the_checker_sees_sql() -> None:
    planted = (
        "from sqlalchemy import select\n"
        "rows = session.scalars(select(User))\n"
        "row = workflow.session.get(User, 1)\n"
        "own_session.add(row)\n"
        "counts.get('x')\n"
    )
    assert [use.split(":")[0] for use in sql_uses(planted)] == [
        "line 1",
        "line 2",
        "line 3",
        "line 4",
    ]
    assert sql_uses("from sqlalchemy.orm import Session\nvalues.get(1)\n") == []
