"""A booking system's export as a CSV manifest: one row per photo, with its provenance.

The manifest has a header naming its columns, in any order:

    path,subject,source_ref,collected,retain_until,legal_basis[,booking_number]

`path` is the photo file, relative to the manifest's folder (it may not leave that
folder); `collected` and `retain_until` are dates (YYYY-MM-DD). `path`, `subject` and
`source_ref` must be filled in every row; `collected`, `retain_until` and `legal_basis`
may be left blank, and the command or the policy fills them.

`read_manifest` checks every row and returns the photos it takes and, for each row it
does not, an `ImportRefusal` naming the row ("intake.csv row 7: field collected: ...").
Rows are numbered as a spreadsheet numbers them: the header is row 1. A file that cannot
be read as a manifest at all (missing, empty, not UTF-8, not CSV, a header without a
required column) raises `ImportFileError` naming the file. The workflow checks what the
reader cannot: lengths and characters against the workflow's limits, dates against
today, source types against the workspace and the policy.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from candor.imports.errors import ImportFileError
from candor.imports.records import ImportedPhoto, ImportRefusal

REQUIRED_COLUMNS: Final = (
    "path",
    "subject",
    "source_ref",
    "collected",
    "retain_until",
    "legal_basis",
)
OPTIONAL_COLUMNS: Final = ("booking_number",)
# Columns that must hold a value in every row; the others may be filled by the command.
FILLED_COLUMNS: Final = ("path", "subject", "source_ref")
# A manifest names photos; its own size is a few bytes a row. The ceiling keeps a wrong
# file (a video, a disk image) from being read into memory.
MAX_MANIFEST_BYTES: Final = 64 * 1024 * 1024
# No field of a row is longer than this (the longest the workflow takes is 2,000
# characters, the legal basis); the csv module's own ceiling is 131,072.
MAX_FIELD_CHARACTERS: Final = 10_000
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


@dataclass(frozen=True)
class _Row:
    number: int
    values: dict[str, str]
    # Why the row cannot be split into the header's columns, if it cannot.
    problem: str | None = None


def read_manifest(path: Path) -> tuple[list[ImportedPhoto], list[ImportRefusal]]:
    """Every row's photo, or its refusal, in the manifest's order.

    Raises ImportFileError when the file as a whole cannot be read as a manifest.
    """
    text = _text_of(path)
    folder = path.parent.resolve()
    photos: list[ImportedPhoto] = []
    refusals: list[ImportRefusal] = []
    first_row_of: dict[Path, int] = {}
    for row in _rows(path, text):
        origin = f"{path.name} row {row.number}"
        try:
            photo = _photo_of(row, origin, folder)
        except _RowRefusedError as refused:
            refusals.append(ImportRefusal(origin, str(refused)))
            continue
        resolved = photo.path.resolve()
        if resolved in first_row_of:
            refusals.append(
                ImportRefusal(
                    origin,
                    f"field path: {_shown(row.values['path'].strip())} is the photo of "
                    f"row {first_row_of[resolved]} already",
                )
            )
            continue
        first_row_of[resolved] = row.number
        photos.append(photo)
    return photos, refusals


class _RowRefusedError(ValueError):
    """One row is refused; the message names the field ("field collected: ...")."""


def _text_of(path: Path) -> str:
    if not path.exists():
        raise ImportFileError(f"the manifest {path} does not exist")
    if not path.is_file():
        raise ImportFileError(f"the manifest {path} is not a file")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ImportFileError(
            f"the manifest {path} has {size:,} bytes; at most {MAX_MANIFEST_BYTES:,} "
            "are read (is it a manifest?)"
        )
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImportFileError(
            f"the manifest {path} cannot be read ({error.strerror or error})"
        ) from None
    if not data.strip():
        raise ImportFileError(f"the manifest {path} is empty")
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" export starts with a byte-order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"the manifest {path} is not UTF-8 text (byte {error.start + 1:,}); "
            "save it as CSV UTF-8"
        ) from None
    if "\x00" in text:
        raise ImportFileError(f"the manifest {path} is not a CSV file (it holds NUL bytes)")
    return text


def _rows(path: Path, text: str) -> list[_Row]:
    """The data rows, numbered from 2 (the header is row 1); blank lines are skipped."""
    # newline="": lines end only at \n, \r or \r\n (str.splitlines would also cut at
    # U+2028 and the like, inside a field), and the csv module sees them as written.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[_Row] = []
    header: list[str] | None = None
    number = 0
    try:
        for fields in reader:
            number += 1
            if not any(field.strip() for field in fields):
                continue
            if header is None:
                header = _header(path, fields)
                continue
            if len(fields) != len(header):
                problem = f"the row has {len(fields)} field(s); the header has {len(header)}"
                rows.append(_Row(number, {}, problem))
                continue
            rows.append(_Row(number, dict(zip(header, fields, strict=True))))
    except csv.Error as error:
        raise ImportFileError(
            f"the manifest {path} is not a CSV file the reader can take "
            f"(line {reader.line_num}: {error})"
        ) from None
    if header is None:
        raise ImportFileError(f"the manifest {path} is empty")
    if not rows:
        raise ImportFileError(f"the manifest {path} has a header but no rows")
    return rows


def _header(path: Path, fields: list[str]) -> list[str]:
    names = [field.strip().lower() for field in fields]
    known = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ImportFileError(
            f"the manifest {path}'s header has the unknown column(s) "
            f"{', '.join(repr(name) for name in unknown)}; the columns are "
            f"{', '.join(known)} (booking_number optional)"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ImportFileError(
            f"the manifest {path}'s header names {', '.join(repeated)} more than once"
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise ImportFileError(
            f"the manifest {path}'s header lacks the column(s) {', '.join(missing)} "
            f"(a manifest's first line names its columns: {','.join(REQUIRED_COLUMNS)})"
        )
    return names


def _photo_of(row: _Row, origin: str, folder: Path) -> ImportedPhoto:
    if row.problem is not None:
        raise _RowRefusedError(row.problem)
    values = row.values
    for name, value in values.items():
        if len(value) > MAX_FIELD_CHARACTERS:
            raise _RowRefusedError(
                f"field {name}: {len(value):,} characters; at most "
                f"{MAX_FIELD_CHARACTERS:,} are read"
            )
    for name in FILLED_COLUMNS:
        if not values[name].strip():
            raise _RowRefusedError(f"field {name}: blank; every row needs one")
    collected = _date(values, "collected")
    retain_until = _date(values, "retain_until")
    if collected is not None and retain_until is not None and retain_until < collected:
        raise _RowRefusedError(
            f"field retain_until: {retain_until.isoformat()} is before the collection "
            f"date {collected.isoformat()}"
        )
    photo = _photo_path(values["path"].strip(), folder)
    legal_basis = values["legal_basis"].strip() or None
    booking_number = values.get("booking_number", "").strip() or None
    return ImportedPhoto(
        origin=origin,
        subject_ref=values["subject"].strip(),
        source_ref=values["source_ref"].strip(),
        collected_on=collected,
        retain_until=retain_until,
        legal_basis=legal_basis,
        booking_number=booking_number,
        path=photo,
    )


def _date(values: dict[str, str], name: str) -> date | None:
    text = values[name].strip()
    if not text:
        return None
    # fromisoformat also takes 20210102 and 2021-W01-2: a manifest says it one way.
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise _RowRefusedError(f"field {name}: {_shown(text)} is not a date in YYYY-MM-DD form")


def _shown(text: str) -> str:
    """A value in a refusal: quoted, control characters escaped, cut at 60 characters."""
    cut = text if len(text) <= 60 else f"{text[:60]}..."
    return repr(cut)


def _photo_path(text: str, folder: Path) -> Path:
    relative = Path(text)
    if relative.is_absolute():
        raise _RowRefusedError(
            f"field path: {_shown(text)} is an absolute path; name the photo relative to "
            "the manifest's folder"
        )
    photo = folder / relative
    try:
        # resolve() follows links: a photo linked from outside the export is refused too.
        inside = photo.resolve().is_relative_to(folder)
        exists, is_file = photo.exists(), photo.is_file()
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise _RowRefusedError(
            f"field path: {_shown(text)} cannot be looked up ({reason})"
        ) from None
    if not inside:
        raise _RowRefusedError(f"field path: {_shown(text)} leads outside the manifest's folder")
    if not exists:
        raise _RowRefusedError(f"field path: {_shown(text)} does not exist")
    if not is_file:
        raise _RowRefusedError(f"field path: {_shown(text)} is not a file")
    return photo
