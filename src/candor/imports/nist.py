"""ANSI/NIST-ITL transactions (EBTS and the like) as booking photos with their provenance.

A booking system exports one transaction per booking: a Type-1 record (the transaction
control number, TCN, and a table of contents, CNT), a Type-2 record with the person's
identifiers, and one Type-10 record per photo. `read_transactions` turns each Type-10
record whose image type (10.003) is FACE into an `ImportedPhoto`, the fields named by a
mapping file filling its provenance, and reports everything else as an `ImportRefusal`
naming the file, the transaction and the record: a `SkippedRecord` (a refusal that is no
fault of the export) for a Type-10 image that is not a face (a scar, a tattoo).

The files come from outside and may be damaged or hostile. Before `nistitl` parses a
transaction, this module walks the records' declared lengths against the bytes actually
there (a record that claims 4 GB is refused without allocating anything; one that claims
0 bytes, which nistitl would read again as each next record, is refused too), checks
every record type against the CNT and the types the standard defines (nistitl fails with
a KeyError on others), and finds where the next transaction starts. A broken transaction is
refused alone: the reader looks for the next Type-1 record and carries on. The image in
10.999 goes through `candor.images`' decoder, so non-image data is refused with its
errors before any file is written.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import tomllib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import nistitl

from candor.images import ImageError, decode_image
from candor.imports.errors import ImportFileError
from candor.imports.records import ImportedPhoto, ImportRefusal

# A whole file is read into memory to be parsed, so it has a ceiling: a booking with a
# few photos and ten fingerprints is a few megabytes.
MAX_FILE_BYTES: Final = 256 * 1024 * 1024

# Record types the standard defines; 3 to 8 are binary (a 4-byte length, no tags).
BINARY_TYPES: Final = frozenset({3, 4, 5, 6, 7, 8})
KNOWN_TYPES: Final = frozenset(range(1, 23)) | {98, 99}
# The image types of 10.003 that are a person's face (the others: SCAR, MARK, TATTOO, ...).
FACE_IMAGE_TYPES: Final = frozenset({"FACE"})
# The record types a mapping may name a field of: the transaction, the person, the photo.
MAPPED_TYPES: Final = frozenset({1, 2, 10})

MAPPING_KEYS: Final = (
    "subject",
    "source_ref",
    "collected",
    "booking_number",
    "legal_basis",
    "retain_until",
)
REQUIRED_KEYS: Final = ("subject", "source_ref", "collected")
DATE_KEYS: Final = frozenset({"collected", "retain_until"})

FS: Final = b"\x1c"
GS: Final = b"\x1d"
RS: Final = b"\x1e"
US: Final = b"\x1f"

# The first field of a tagged record: "T.001:LENGTH<GS>" (older files write "T.01:").
_TAGGED_HEAD: Final = re.compile(rb"(\d{1,3})\.0{0,2}1:(\d{1,12})\x1d")
# Where a transaction starts; searched for to carry on after a broken one.
_TRANSACTION_START: Final = re.compile(rb"1\.0{0,2}1:\d{1,12}\x1d1\.0{0,2}2:")
_FIELD_SPEC: Final = re.compile(r"(\d{1,2})\.(\d{1,3})")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_IMAGE_SUFFIX: Final = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
_EXAMPLE: Final = "nist-mapping.toml"


@dataclass(frozen=True)
class FieldRef:
    """One field of a transaction: record type and field number (2.015)."""

    record_type: int
    number: int

    def __str__(self) -> str:
        return f"{self.record_type}.{self.number:03d}"


@dataclass(frozen=True)
class NistMapping:
    """Which field fills which part of a photo's provenance (None: the command's or policy's)."""

    subject: FieldRef
    source_ref: FieldRef
    collected: FieldRef
    booking_number: FieldRef | None = None
    legal_basis: FieldRef | None = None
    retain_until: FieldRef | None = None


def example_mapping_text() -> str:
    """The shipped mapping file: the defaults, with a comment on each key."""
    return Path(__file__).with_name(_EXAMPLE).read_text(encoding="utf-8")


def default_mapping() -> NistMapping:
    """The mapping of the shipped example (2.015, 1.009, 10.005, no booking number)."""
    return parse_mapping(example_mapping_text(), _EXAMPLE)


def load_mapping(path: Path) -> NistMapping:
    """Read a mapping file (TOML); ImportFileError names the file and the key at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImportFileError(f"{path}: there is no such mapping file") from None
    except UnicodeDecodeError:
        raise ImportFileError(f"{path}: the mapping file is not UTF-8 text") from None
    except OSError as error:
        raise ImportFileError(
            f"{path}: the mapping file cannot be read ({error.strerror})"
        ) from None
    return parse_mapping(text, str(path))


def parse_mapping(text: str, name: str) -> NistMapping:
    """The mapping in `text` (TOML); `name` says where it came from in errors."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ImportFileError(f"{name}: not a TOML mapping file ({error})") from None
    return mapping_from_table(table, name)


def mapping_table(mapping: NistMapping) -> dict[str, str]:
    """The mapping as its file's keys and values ({"subject": "2.015", ...}): for a job."""
    return {key: str(ref) for key, ref in _mapped(mapping)}


def mapping_from_table(table: Mapping[str, object], name: str) -> NistMapping:
    """The mapping from a mapping file's table (or `mapping_table`'s)."""
    unknown = sorted(set(table) - set(MAPPING_KEYS))
    if unknown:
        raise ImportFileError(
            f"{name}: unknown key {unknown[0]!r} (the keys are {', '.join(MAPPING_KEYS)})"
        )
    fields: dict[str, FieldRef | None] = {}
    for key in MAPPING_KEYS:
        value = table.get(key)
        if value is None:
            if key in REQUIRED_KEYS:
                raise ImportFileError(f'{name}: key {key!r} is missing (a field such as "2.015")')
            fields[key] = None
            continue
        fields[key] = _field_ref(value, name, key)
    subject, source_ref, collected = (fields[key] for key in REQUIRED_KEYS)
    assert subject is not None and source_ref is not None and collected is not None
    return NistMapping(
        subject=subject,
        source_ref=source_ref,
        collected=collected,
        booking_number=fields["booking_number"],
        legal_basis=fields["legal_basis"],
        retain_until=fields["retain_until"],
    )


def _field_ref(value: object, name: str, key: str) -> FieldRef:
    match = _FIELD_SPEC.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ImportFileError(
            f'{name}: key {key!r}: {value!r} is not a field number such as "2.015"'
        )
    record_type, number = int(match[1]), int(match[2])
    if record_type not in MAPPED_TYPES:
        raise ImportFileError(
            f"{name}: key {key!r}: {value} is in a Type-{record_type} record; a mapping "
            "names fields of Type-1, Type-2 or Type-10 records"
        )
    if number < 3 or number == 999:
        raise ImportFileError(f"{name}: key {key!r}: {value} is not a text field")
    return FieldRef(record_type, number)


def read_transactions(
    path: Path,
    mapping: NistMapping,
    staging: Path,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> tuple[list[ImportedPhoto], list[ImportRefusal]]:
    """Every face photo of the transactions in a file, or in the files of a folder.

    path: one ANSI/NIST-ITL file (one or more transactions, one after the other), or a
        folder whose files (not hidden, not in subfolders) are read in name order; a
        file of a folder that cannot be read at all is one refusal.
    staging: a private folder (the caller makes and removes it) for the face images,
        written mode 0600 and named by number; each photo's `path` is its file there.
    Raises ImportFileError when `path` itself cannot be read (missing, empty, too large,
    not ANSI/NIST-ITL), or is a folder without any file.
    """
    photos: list[ImportedPhoto] = []
    refusals: list[ImportRefusal] = []
    if path.is_dir():
        files = sorted(
            child for child in path.iterdir() if child.is_file() and not child.name.startswith(".")
        )
        if not files:
            raise ImportFileError(f"{path}: the folder has no ANSI/NIST-ITL files")
        for file in files:
            try:
                _read_file(file, mapping, staging, max_file_bytes, photos, refusals)
            except _FileError as error:
                refusals.append(ImportRefusal(str(file), error.reason))
        return photos, refusals
    _read_file(path, mapping, staging, max_file_bytes, photos, refusals)
    return photos, refusals


@dataclass(frozen=True)
class SkippedRecord(ImportRefusal):
    """A record that is not a photo to enrol (a Type-10 image of a scar or tattoo): reported,
    but not an error in the export."""


class _FileError(ImportFileError):
    """ImportFileError that keeps the problem apart from the file's name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.reason = reason


class _RefusedError(Exception):
    """A transaction or record refused: the reason, without the origin."""


class _SkippedError(_RefusedError):
    """A record that is no photo to enrol: reported as a SkippedRecord."""


@dataclass(frozen=True)
class _Span:
    """Where one transaction lies in the file: bytes [start, end)."""

    start: int
    end: int


def _read_file(
    path: Path,
    mapping: NistMapping,
    staging: Path,
    max_file_bytes: int,
    photos: list[ImportedPhoto],
    refusals: list[ImportRefusal],
) -> None:
    data = _file_bytes(path, max_file_bytes)
    name = str(path)
    if _TAGGED_HEAD.match(data) is None or not data.startswith(b"1."):
        raise _FileError(name, "not an ANSI/NIST-ITL file (it does not start with a Type-1 record)")
    number = 0
    offset = 0
    while offset < len(data):
        number += 1
        label = f"{name} transaction #{number}"
        try:
            span = _transaction_span(data, offset)
        except _RefusedError as refused:
            following = _TRANSACTION_START.search(data, offset + 1)
            end = len(data) if following is None else following.start()
            rest = "" if following is not None else "; nothing after it could be read"
            refusals.append(
                ImportRefusal(f"{label} (at byte {offset})", f"refused whole: {refused}{rest}")
            )
            offset = end
            continue
        _read_transaction(data[span.start : span.end], label, mapping, staging, photos, refusals)
        offset = span.end


def _file_bytes(path: Path, max_file_bytes: int) -> bytes:
    name = str(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise _FileError(name, "not a file")
        if size == 0:
            raise _FileError(name, "the file is empty (0 bytes)")
        if size > max_file_bytes:
            raise _FileError(
                name,
                f"the file is {size} bytes, over the limit of {max_file_bytes} for one "
                "ANSI/NIST-ITL file",
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise _FileError(name, "there is no such file") from None
    except OSError as error:
        raise _FileError(name, f"the file cannot be read ({error.strerror})") from None


# --- finding the transaction's records before parsing them --------------------------------


def _transaction_span(data: bytes, start: int) -> _Span:
    """The bytes of the transaction starting at `start`, every record's length checked."""
    head = _TAGGED_HEAD.match(data, start)
    if head is None or head[1] != b"1":
        raise _RefusedError("it does not start with a Type-1 record")
    contents = _contents(data, start, int(head[2]))
    offset = start
    for position, declared in enumerate(contents, start=1):
        length = _record_length(data, offset, position, declared)
        offset += length
    return _Span(start, offset)


def _contents(data: bytes, start: int, length: int) -> list[int]:
    """The record types the Type-1 record's CNT (1.003) lists, the Type-1 record first."""
    end = start + length
    if length < 10 or end > len(data):
        raise _RefusedError(_length_problem("the Type-1 record", length, len(data) - start))
    if data[end - 1 : end] != FS:
        raise _RefusedError("the Type-1 record does not end where its length (1.001) says")
    cnt = None
    for field in data[start : end - 1].split(GS):
        tag, _, value = field.partition(b":")
        if re.fullmatch(rb"1\.0{0,2}3", tag):
            cnt = value
    if cnt is None:
        raise _RefusedError("the Type-1 record has no content list (1.003)")
    entries = [subfield.split(US) for subfield in cnt.split(RS)]
    if any(len(items) != 2 or not all(item.isdigit() for item in items) for items in entries):
        raise _RefusedError("the Type-1 record's content list (1.003) is malformed")
    if int(entries[0][0]) != 1 or int(entries[0][1]) != len(entries) - 1:
        raise _RefusedError(
            "the Type-1 record's content list (1.003) does not count the records it lists"
        )
    types = [1]
    for position, (record_type, _idc) in enumerate(entries[1:], start=2):
        kind = int(record_type)
        if kind not in KNOWN_TYPES or kind == 1:
            raise _RefusedError(
                f"record {position} is listed as Type-{kind}, which ANSI/NIST-ITL does not "
                "define here"
            )
        types.append(kind)
    return types


def _record_length(data: bytes, offset: int, position: int, declared: int) -> int:
    """The length of the record at `offset` (checked against the file), of type `declared`."""
    left = len(data) - offset
    what = f"record {position} (Type-{declared})"
    if left <= 0:
        raise _RefusedError(f"the file ends before {what} that the content list (1.003) lists")
    if declared in BINARY_TYPES:
        if left < 5:
            raise _RefusedError(f"the file ends inside {what}")
        (length,) = struct.unpack(">L", data[offset : offset + 4])
        if length < 5 or length > left:
            raise _RefusedError(_length_problem(what, length, left))
        return int(length)
    head = _TAGGED_HEAD.match(data, offset)
    if head is None:
        raise _RefusedError(f"{what} does not start with its length field ({declared}.001)")
    found = int(head[1])
    if found != declared:
        raise _RefusedError(
            f"record {position} is a Type-{found} record but the content list (1.003) says "
            f"Type-{declared}"
        )
    length = int(head[2])
    if length < head.end() - offset or length > left:
        raise _RefusedError(_length_problem(what, length, left))
    if data[offset + length - 1 : offset + length] != FS:
        raise _RefusedError(f"{what} does not end where its length ({declared}.001) says")
    return length


def _length_problem(what: str, length: int, left: int) -> str:
    if length > left:
        return (
            f"{what} declares {length} bytes but only {left} remain in the file "
            "(truncated, or a false length)"
        )
    return f"{what} declares an impossible length of {length} bytes"


# --- one transaction ---------------------------------------------------------------------


def _read_transaction(
    chunk: bytes,
    label: str,
    mapping: NistMapping,
    staging: Path,
    photos: list[ImportedPhoto],
    refusals: list[ImportRefusal],
) -> None:
    message = nistitl.Message()
    try:
        with warnings.catch_warnings():
            # nistitl warns of the deprecated Types 3, 5 and 6; they are skipped anyway.
            warnings.simplefilter("ignore")
            message.parse(chunk)
    except nistitl.NistException as error:
        refusals.append(ImportRefusal(label, f"refused whole: {_nist_problem(error)}"))
        return
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, struct.error) as error:
        refusals.append(
            ImportRefusal(
                label, f"refused whole: its fields cannot be read ({type(error).__name__})"
            )
        )
        return
    records: list[Any] = list(message)
    try:
        tcn = _text(records[0], 9)
        if tcn:
            label = f"{label.rsplit(' transaction #', 1)[0]} transaction {tcn}"
        people = [record for record in records if record.type == 2]
        faces = [record for record in records if record.type == 10]
        if not faces:
            raise _RefusedError("it has no Type-10 (photo) record")
        shared = _transaction_values(records[0], people, mapping)
    except _RefusedError as refused:
        refusals.append(ImportRefusal(label, f"refused whole: {refused}"))
        return
    for number, record in enumerate(faces, start=1):
        origin = f"{label} record 10 #{number}"
        try:
            photos.append(
                _photo(record, people, records[0], mapping, shared, origin, staging, len(photos))
            )
        except _SkippedError as skipped:
            refusals.append(SkippedRecord(origin, str(skipped)))
        except _RefusedError as refused:
            refusals.append(ImportRefusal(origin, str(refused)))


def _nist_problem(error: nistitl.NistException) -> str:
    problem = str(error.args[0]) if error.args else error.error.name
    return f"not a valid ANSI/NIST-ITL transaction ({problem})"


def _transaction_values(type1: Any, people: Sequence[Any], mapping: NistMapping) -> dict[str, str]:
    """Checks that concern the whole transaction: the mapped subject in every Type-2."""
    refs = [ref for ref in _mapped(mapping) if ref[1].record_type == 1]
    values: dict[str, str] = {}
    for key, ref in refs:
        value = _text(type1, ref.number, ref)
        if value is not None:
            values[key] = value
        elif key in REQUIRED_KEYS:
            raise _RefusedError(f"{ref} ({key}) is missing")
    if mapping.subject.record_type == 2:
        if not people:
            raise _RefusedError(f"it has no Type-2 record, so no {mapping.subject} (subject)")
        for person in people:
            if _text(person, mapping.subject.number, mapping.subject) is None:
                raise _RefusedError(f"{mapping.subject} (subject) is missing")
    return values


def _mapped(mapping: NistMapping) -> Iterator[tuple[str, FieldRef]]:
    for key in MAPPING_KEYS:
        ref: FieldRef | None = getattr(mapping, key)
        if ref is not None:
            yield key, ref


def _photo(
    record: Any,
    people: Sequence[Any],
    type1: Any,
    mapping: NistMapping,
    shared: dict[str, str],
    origin: str,
    staging: Path,
    serial: int,
) -> ImportedPhoto:
    image_type = _text(record, 3, FieldRef(10, 3))
    if image_type is None:
        raise _RefusedError("10.003 (image type) is missing")
    if image_type.upper() not in FACE_IMAGE_TYPES:
        raise _SkippedError(f"image type (10.003) {image_type} is not a face")
    person = _person_of(record, people) if people else None
    values: dict[str, str | None] = {}
    for key, ref in _mapped(mapping):
        if ref.record_type == 1:
            values[key] = shared.get(key)
            continue
        source = record if ref.record_type == 10 else person
        if source is None:
            raise _RefusedError(f"there is no Type-2 record for {ref} ({key})")
        values[key] = _text(source, ref.number, ref)
        if values[key] is None and key in REQUIRED_KEYS:
            raise _RefusedError(f"{ref} ({key}) is missing")
    dates = {key: _date(values.get(key), getattr(mapping, key), key) for key in sorted(DATE_KEYS)}
    data = _image_data(record)
    try:
        decoded = decode_image(data, name=origin)
    except ImageError as error:
        raise _RefusedError(f"10.999 (image): {error.problem}") from None
    target = _write_private(
        staging, f"{serial + 1:06d}-", _IMAGE_SUFFIX.get(decoded.format, ".img"), decoded.data
    )
    subject, source_ref = values["subject"], values["source_ref"]
    assert subject is not None and source_ref is not None  # required keys, checked above
    return ImportedPhoto(
        origin=origin,
        subject_ref=subject,
        source_ref=source_ref,
        collected_on=dates["collected"],
        retain_until=dates["retain_until"],
        legal_basis=values.get("legal_basis"),
        booking_number=values.get("booking_number"),
        path=target,
    )


def _person_of(record: Any, people: Sequence[Any]) -> Any:
    """The Type-2 record a photo belongs to: the only one, or the one with its IDC."""
    if len(people) == 1:
        return people[0]
    idc = _text(record, 2)
    for person in people:
        if _text(person, 2) == idc:
            return person
    raise _RefusedError(
        f"the transaction has {len(people)} Type-2 records and none has this photo's "
        f"IDC (10.002) {idc}"
    )


def _text(record: Any, number: int, ref: FieldRef | None = None) -> str | None:
    """A text field's single value, stripped; None when absent or blank."""
    field = record[number]
    if field is None:
        return None
    value = field.value
    if isinstance(value, list | tuple):
        if len(value) != 1 or not isinstance(value[0], str):
            name = ref or FieldRef(record.type, number)
            raise _RefusedError(f"{name} has {len(value)} values where one is expected")
        value = value[0]
    text = str(value).strip()
    if not text:
        return None
    if _CONTROL.search(text):
        name = ref or FieldRef(record.type, number)
        raise _RefusedError(f"{name} contains control characters")
    return text


def _date(text: str | None, ref: FieldRef | None, key: str) -> date | None:
    if text is None:
        return None
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text)
    except ValueError:
        raise _RefusedError(f"{ref} ({key}): {text!r} is not a date (YYYYMMDD)") from None


def _image_data(record: Any) -> bytes:
    field = record[999]
    data = None if field is None else field.value
    if not isinstance(data, bytes) or not data:
        raise _RefusedError("10.999 (image) is missing or empty")
    return data


def _write_private(staging: Path, prefix: str, suffix: str, data: bytes) -> Path:
    """The photo's bytes in a new file readable by this user only (mkstemp: mode 0600)."""
    descriptor, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=staging)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    return Path(name)


# --- writing (for the transaction-building script and the tests) ---------------------------


@dataclass(frozen=True)
class NistPhoto:
    """One Type-10 record to write: the image bytes, the photo date, the image type."""

    data: bytes
    taken_on: date | None
    image_type: str = "FACE"


def make_transaction(
    tcn: str,
    subject: str | None,
    photos: Sequence[NistPhoto],
    *,
    person_fields: dict[int, str] | None = None,
) -> bytes:
    """One ANSI/NIST-ITL transaction (Type-1, one Type-2, a Type-10 per photo) as bytes.

    subject: the state identification number (2.015); None leaves the field out.
    person_fields: further Type-2 fields by number (an agency's booking number, say).
    """
    message = nistitl.Message()
    message.TOT = "CAR"  # criminal tenprint/booking submission
    message[0].TCN = tcn
    person = nistitl.AsciiRecord(2)
    person.IDC = 0
    fields = dict(person_fields or {})
    if subject is not None:
        fields[15] = subject
    for number, value in sorted(fields.items()):
        person += nistitl.Field(2, number, value)
    message += person
    for index, photo in enumerate(photos, start=1):
        record = nistitl.AsciiRecord(10)
        record.IDC = index
        record.IMT = photo.image_type
        record.SRC = "CANDORTEST"
        if photo.taken_on is not None:
            record.PHD = photo.taken_on.strftime("%Y%m%d")
        record.CGA = "JPEGB"
        record.DATA = photo.data
        message += record
    return bytes(message.NIST)
