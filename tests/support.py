"""Helpers shared by the tests: picking real photos, making workspaces, scanning files."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date
from pathlib import Path

from PIL import Image
from sqlalchemy import Engine, MetaData, create_engine, make_url, select, text

from candor.store import Provenance, Workspace
from candor.store.workspace import DATABASE_NAME, DATABASE_URL_FIELD, MARKER_NAME


def people_with_photos(faces_dir: Path, count: int, *, minimum: int = 2) -> list[Path]:
    """The first `count` lfw-dev people (sorted) with at least `minimum` photos."""
    chosen: list[Path] = []
    for folder in sorted((faces_dir / "lfw-dev").iterdir()):
        if len(list(folder.glob("*.jpg"))) >= minimum:
            chosen.append(folder)
            if len(chosen) == count:
                break
    return chosen


def photos_of(person: Path) -> list[Path]:
    """A person's photos in sorted order."""
    return sorted(person.glob("*.jpg"))


def evaluation_provenance() -> Provenance:
    """Provenance for test photos in an evaluation workspace."""
    return Provenance(
        source_type="evaluation",
        source_ref="lfw-dev (tests)",
        legal_basis="research use under the LFW terms",
        collected_on=date(2020, 1, 1),
        retain_until=date(2029, 12, 1),
    )


def side_by_side(first: Path, second: Path, target: Path) -> Path:
    """A photo with two faces: two photos pasted next to each other."""
    left, right = Image.open(first).convert("RGB"), Image.open(second).convert("RGB")
    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    canvas.save(target, quality=95)
    return target


def files_containing(root: Path, pattern: bytes) -> list[Path]:
    """Every file under `root` whose bytes contain `pattern`."""
    return [
        path for path in sorted(root.rglob("*")) if path.is_file() and pattern in path.read_bytes()
    ]


def database_holds(workspace: Workspace, pattern: bytes) -> bool:
    """Whether the workspace's database holds `pattern`: on SQLite anywhere in its files
    (free pages and the write-ahead log too); on PostgreSQL, whose files a client cannot
    read, in any value of any row of any table."""
    if workspace.database_url is None:
        return any(pattern in path.read_bytes() for path in workspace.home.glob("candor.db*"))
    text = pattern.decode("utf-8", errors="replace")
    tables = MetaData()
    tables.reflect(workspace.engine)
    with workspace.engine.connect() as connection:
        for table in tables.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        if pattern in bytes(value):
                            return True
                    elif text in str(value):
                        return True
    return False


def database_url_of(home: Path) -> str:
    """The SQLAlchemy URL of a workspace's database, as its marker names it: the
    PostgreSQL database, else the SQLite file in the folder."""
    marker = json.loads((home / MARKER_NAME).read_text(encoding="utf-8"))
    url = marker.get(DATABASE_URL_FIELD)
    return str(url) if url is not None else f"sqlite:///{home / DATABASE_NAME}"


def raw_engine(home: Path) -> Engine:
    """An engine on a workspace's database behind Candor's back (as an insider with the
    database would have), on either database; dispose it after use."""
    return create_engine(database_url_of(home))


def raw_sql(home: Path, statement: str, *args: object) -> tuple[int, list[tuple[object, ...]]]:
    """Run one statement, with `?` placeholders, on a workspace's database behind Candor's
    back and commit it; the rows it changed and the rows it returned."""
    parts = statement.split("?")
    if len(parts) != len(args) + 1:
        raise ValueError(f"{len(args)} values for {len(parts) - 1} placeholders: {statement}")
    named = parts[0] + "".join(f":p{index}{part}" for index, part in enumerate(parts[1:]))
    engine = raw_engine(home)
    try:
        with engine.begin() as connection:
            result = connection.execute(
                text(named), {f"p{index}": value for index, value in enumerate(args)}
            )
            rows = [tuple(row) for row in result] if result.returns_rows else []
            return result.rowcount, rows
    finally:
        engine.dispose()


def copy_workspace(source: Path, target: Path) -> Path:
    """A copy of a workspace folder that nothing has open; on PostgreSQL its database is
    copied too (a new database made from it as the template) and the copy's marker names
    the new one, so the copy and the original never share tables."""
    shutil.copytree(source, target)
    marker_path = target / MARKER_NAME
    marker = json.loads(marker_path.read_text(encoding="utf-8"))
    url = marker.get(DATABASE_URL_FIELD)
    if url is None:
        return target
    original = make_url(url)
    name = f"candor_{uuid.uuid4().hex[:12]}"
    server = create_engine(original.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{original.database}"'))
    finally:
        server.dispose()
    marker[DATABASE_URL_FIELD] = original.set(database=name).render_as_string(hide_password=False)
    marker_path.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return target
