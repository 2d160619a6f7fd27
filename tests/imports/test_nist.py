"""ANSI/NIST-ITL transactions read with nistitl: good ones become photos with their own
provenance, bad ones are refused by file, transaction and record, nothing else lost."""

from __future__ import annotations

import io
import re
import stat
import struct
from dataclasses import replace
from datetime import date
from pathlib import Path

import nistitl
import pytest
from PIL import Image

from candor.imports.errors import ImportFileError
from candor.imports.nist import (
    FieldRef,
    NistPhoto,
    SkippedRecord,
    default_mapping,
    load_mapping,
    make_transaction,
    mapping_from_table,
    mapping_table,
    parse_mapping,
    read_transactions,
)
from candor.imports.records import ImportedPhoto, ImportRefusal

MAPPING = default_mapping()


def jpeg(shade: int) -> bytes:
    """A small real JPEG (the reader decodes it; finding a face is the workflow's job)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 80), (shade, 120, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


def transaction(tcn: str, subject: str | None = "SID1", photos: int = 2) -> bytes:
    return make_transaction(
        tcn,
        subject,
        [NistPhoto(jpeg(10 * k + len(tcn)), date(2024, 3, k + 1)) for k in range(photos)],
    )


def read(
    tmp_path: Path, content: bytes, name: str = "tx.an2", **kwargs: object
) -> tuple[list[ImportedPhoto], list[ImportRefusal]]:
    file = tmp_path / name
    file.write_bytes(content)
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    return read_transactions(file, kwargs.pop("mapping", MAPPING), staging)  # type: ignore[arg-type]


def reasons(refusals: list[ImportRefusal]) -> list[str]:
    return [f"{refusal.origin}: {refusal.reason}" for refusal in refusals]


def test_each_face_record_is_a_photo_with_its_own_provenance(tmp_path: Path) -> None:
    content = make_transaction(
        "TCN-A",
        "SID-7",
        [NistPhoto(jpeg(1), date(2023, 5, 6)), NistPhoto(jpeg(2), date(2024, 1, 2))],
        person_fields={900: "BK-1234"},
    )
    mapping = parse_mapping(
        'subject = "2.015"\nsource_ref = "1.009"\ncollected = "10.005"\nbooking_number = "2.900"\n',
        "test",
    )
    photos, refusals = read(tmp_path, content + transaction("TCN-B", "SID-8", 1), mapping=mapping)
    assert refusals == []
    file = tmp_path / "tx.an2"
    assert [(p.origin, p.subject_ref, p.source_ref, p.collected_on) for p in photos] == [
        (f"{file} transaction TCN-A record 10 #1", "SID-7", "TCN-A", date(2023, 5, 6)),
        (f"{file} transaction TCN-A record 10 #2", "SID-7", "TCN-A", date(2024, 1, 2)),
        (f"{file} transaction TCN-B record 10 #1", "SID-8", "TCN-B", date(2024, 3, 1)),
    ]
    assert [p.booking_number for p in photos] == ["BK-1234", "BK-1234", None]
    assert photos[0].legal_basis is None and photos[0].retain_until is None
    # The staged files are the records' own bytes, readable by their owner only.
    assert photos[1].path.read_bytes() == jpeg(2)
    assert all(stat.S_IMODE(p.path.stat().st_mode) == 0o600 for p in photos)
    assert all(p.path.parent == tmp_path / "staging" for p in photos)


def test_non_face_records_are_skipped_and_reported(tmp_path: Path) -> None:
    content = make_transaction(
        "TCN-S",
        "SID-1",
        [NistPhoto(jpeg(1), date(2024, 1, 1), "SCAR"), NistPhoto(jpeg(2), date(2024, 1, 1))],
    )
    photos, refusals = read(tmp_path, content)
    assert [p.origin.rsplit(" ", 1)[-1] for p in photos] == ["#2"]
    assert reasons(refusals) == [
        f"{tmp_path / 'tx.an2'} transaction TCN-S record 10 #1: "
        "image type (10.003) SCAR is not a face"
    ]
    assert isinstance(refusals[0], SkippedRecord)


def test_a_transaction_without_the_subject_field_is_refused_whole(tmp_path: Path) -> None:
    content = transaction("TCN-1") + transaction("TCN-2", subject=None) + transaction("TCN-3")
    photos, refusals = read(tmp_path, content)
    assert {p.source_ref for p in photos} == {"TCN-1", "TCN-3"}
    assert len(photos) == 4
    assert reasons(refusals) == [
        f"{tmp_path / 'tx.an2'} transaction TCN-2: refused whole: 2.015 (subject) is missing"
    ]


def test_a_photo_without_its_date_or_with_a_bad_one_is_refused_alone(tmp_path: Path) -> None:
    content = make_transaction(
        "TCN-D", "SID-1", [NistPhoto(jpeg(1), None), NistPhoto(jpeg(2), date(2024, 2, 3))]
    )
    bad_date = content.replace(b"10.005:20240203", b"10.005:20241341")
    photos, refusals = read(tmp_path, content + transaction("TCN-E", photos=1))
    assert [p.source_ref for p in photos] == ["TCN-D", "TCN-E"]
    assert reasons(refusals) == [
        f"{tmp_path / 'tx.an2'} transaction TCN-D record 10 #1: 10.005 (collected) is missing"
    ]
    photos, refusals = read(tmp_path, bad_date, name="bad-date.an2")
    assert [r.reason for r in refusals] == [
        "10.005 (collected) is missing",
        "10.005 (collected): '20241341' is not a date (YYYYMMDD)",
    ]
    assert photos == []


def test_non_image_data_is_refused_with_the_decoders_reason(tmp_path: Path) -> None:
    content = make_transaction(
        "TCN-X",
        "SID-1",
        [
            NistPhoto(b"%PDF-1.4 not a photo at all", date(2024, 1, 1)),
            NistPhoto(jpeg(3)[:200], date(2024, 1, 1)),
            NistPhoto(jpeg(4), date(2024, 1, 1)),
        ],
    )
    photos, refusals = read(tmp_path, content)
    assert len(photos) == 1
    assert [r.origin.rsplit(" ", 1)[-1] for r in refusals] == ["#1", "#2"]
    assert all(r.reason.startswith("10.999 (image): ") for r in refusals)
    assert "Candor accepts JPEG, PNG and WebP images" in refusals[0].reason
    assert "truncated" in refusals[1].reason or "ends" in refusals[1].reason
    # Nothing of a refused record is staged.
    assert list((tmp_path / "staging").iterdir()) == [photos[0].path]


def test_a_truncated_transaction_is_refused_and_the_next_one_still_read(tmp_path: Path) -> None:
    first, second = transaction("TCN-T"), transaction("TCN-U")
    photos, refusals = read(tmp_path, first[:-300] + second)
    assert [p.source_ref for p in photos] == ["TCN-U", "TCN-U"]
    assert len(refusals) == 1
    assert refusals[0].origin == f"{tmp_path / 'tx.an2'} transaction #1 (at byte 0)"
    assert refusals[0].reason.startswith("refused whole: record 4 (Type-10)")
    # The same transaction cut at the end of the file.
    photos, refusals = read(tmp_path, second + first[:-300], name="end.an2")
    assert len(photos) == 2
    assert reasons(refusals) == [
        f"{tmp_path / 'end.an2'} transaction #2 (at byte {len(second)}): refused whole: "
        f"record 4 (Type-10) declares {_last(first)} bytes but only {_last(first) - 300} "
        "remain in the file (truncated, or a false length); nothing after it could be read"
    ]


def _last(content: bytes) -> int:
    """The declared length of the last record of a transaction."""
    return int(re.findall(rb"\x1c10\.001:(\d+)", content)[-1])


def test_huge_declared_lengths_are_refused_before_reading(tmp_path: Path) -> None:
    good = transaction("TCN-H")
    declared = _last(good)
    huge = good.replace(f"10.001:{declared}".encode(), b"10.001:999999999999", 1)
    photos, refusals = read(tmp_path, huge + transaction("TCN-I"))
    assert [p.source_ref for p in photos] == ["TCN-I", "TCN-I"]
    assert "declares 999999999999 bytes but only" in refusals[0].reason
    # A binary record (Type-4, a fingerprint) claiming 4 GB, and one claiming 0 bytes
    # (nistitl would read it again as each next record until its table runs out).
    message = nistitl.Message()
    message.parse(good)
    fingerprint = nistitl.BinaryRecord(4)
    fingerprint.IDC = 9
    fingerprint.value = b"\x00" * 20
    message += fingerprint
    with_type4 = bytes(message.NIST)
    at = len(with_type4) - 25  # the binary record's 4-byte length
    for length in (0xFFFFFFFF, 0):
        content = with_type4[:at] + struct.pack(">L", length) + with_type4[at + 4 :]
        photos, refusals = read(tmp_path, content, name=f"type4-{length}.an2")
        assert photos == []
        assert re.fullmatch(
            r"refused whole: record 5 \(Type-4\) declares (an impossible length of 0|"
            r"4294967295) bytes.*",
            refusals[0].reason,
        ), refusals[0].reason
    photos, refusals = read(tmp_path, with_type4, name="type4.an2")
    assert (len(photos), refusals) == (2, [])


def test_wrong_record_types_are_refused(tmp_path: Path) -> None:
    good = transaction("TCN-W", photos=1)
    # The CNT says Type-10 but the record is a Type-14 (the tags say so).
    as_14 = re.sub(rb"\x1c10\.", b"\x1c14.", good)
    as_14 = re.sub(rb"\x1d10\.", b"\x1d14.", as_14)
    photos, refusals = read(tmp_path, as_14 + transaction("TCN-V", photos=1))
    assert [p.source_ref for p in photos] == ["TCN-V"]
    assert refusals[0].reason == (
        "refused whole: record 3 is a Type-14 record but the content list (1.003) says Type-10"
    )
    # A record type the standard does not define.
    listed_25 = good.replace(b"\x1e10\x1f1", b"\x1e25\x1f1")
    photos, refusals = read(tmp_path, listed_25, name="type25.an2")
    assert photos == []
    assert "record 3 is listed as Type-25" in refusals[0].reason
    # A transaction with no photo at all.
    photos, refusals = read(tmp_path, make_transaction("TCN-N", "SID", []), name="none.an2")
    assert reasons(refusals) == [
        f"{tmp_path / 'none.an2'} transaction TCN-N: refused whole: "
        "it has no Type-10 (photo) record"
    ]


def test_whole_files_that_cannot_be_read(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    cases = {
        "empty.an2": (b"", "the file is empty (0 bytes)"),
        "photo.jpg": (jpeg(1), "not an ANSI/NIST-ITL file"),
        "big.an2": (transaction("TCN-BIG") * 3, "the file is "),
    }
    for name, (content, problem) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ImportFileError, match=re.escape(f"{tmp_path / name}: {problem}")):
            read_transactions(
                tmp_path / name, MAPPING, staging, max_file_bytes=len(transaction("TCN-BIG")) * 2
            )
    with pytest.raises(ImportFileError, match="no such file"):
        read_transactions(tmp_path / "missing.an2", MAPPING, staging)


def test_a_folder_refuses_bad_files_one_by_one(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a.an2").write_bytes(transaction("TCN-1"))
    (folder / "b.an2").write_bytes(b"")
    (folder / "c.an2").write_bytes(b"hello")
    (folder / ".hidden").write_bytes(b"ignored")
    (folder / "d.an2").write_bytes(transaction("TCN-4", photos=1))
    staging = tmp_path / "staging"
    staging.mkdir()
    photos, refusals = read_transactions(folder, MAPPING, staging)
    assert [p.source_ref for p in photos] == ["TCN-1", "TCN-1", "TCN-4"]
    assert [(Path(r.origin).name, r.reason.split(" (")[0]) for r in refusals] == [
        ("b.an2", "the file is empty"),
        ("c.an2", "not an ANSI/NIST-ITL file"),
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFileError, match="has no ANSI/NIST-ITL files"):
        read_transactions(tmp_path / "empty", MAPPING, staging)


def test_every_cut_and_every_flipped_byte_gives_refusals_not_exceptions(tmp_path: Path) -> None:
    """Hostile input: whatever the damage, the reader reports it and carries on."""
    good = transaction("TCN-F", photos=1)
    staging = tmp_path / "staging"
    staging.mkdir()
    file = tmp_path / "fuzz.an2"
    variants = [good[:cut] for cut in range(1, len(good), 37)]
    variants += [good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :] for at in range(0, 400, 3)]
    for content in variants:
        file.write_bytes(content)
        try:
            photos, refusals = read_transactions(file, MAPPING, staging)
        except ImportFileError as error:
            assert str(error).startswith(f"{file}: ")
            continue
        assert len(photos) + len(refusals) >= 1
        assert all(r.origin.startswith(f"{file} transaction") for r in refusals)


def test_mapping_files(tmp_path: Path) -> None:
    assert (MAPPING.subject.record_type, MAPPING.subject.number) == (2, 15)
    assert str(MAPPING.source_ref) == "1.009" and str(MAPPING.collected) == "10.005"
    assert MAPPING.booking_number is None
    cases = {
        'subject = "2.015"\nsource_ref = "1.009"\n': "key 'collected' is missing",
        'subject = "2.015"\nsource_ref = "1.009"\ncollected = "10.005"\nbooking = "2.9"\n': (
            "unknown key 'booking'"
        ),
        'subject = "SID"\nsource_ref = "1.009"\ncollected = "10.005"\n': (
            "key 'subject': 'SID' is not a field number"
        ),
        'subject = "14.015"\nsource_ref = "1.009"\ncollected = "10.005"\n': (
            "key 'subject': 14.015 is in a Type-14 record"
        ),
        'subject = "2.015"\nsource_ref = "1.009"\ncollected = "10.999"\n': (
            "key 'collected': 10.999 is not a text field"
        ),
        "subject = [": "not a TOML mapping file",
    }
    for text, problem in cases.items():
        file = tmp_path / "mapping.toml"
        file.write_text(text)
        with pytest.raises(ImportFileError, match=re.escape(f"{file}: {problem}")):
            load_mapping(file)
    with pytest.raises(ImportFileError, match="no such mapping file"):
        load_mapping(tmp_path / "absent.toml")
    assert mapping_from_table(mapping_table(MAPPING), "job") == MAPPING


def test_the_mapping_in_the_admin_guide_reads() -> None:
    guide = Path(__file__).resolve().parents[2] / "docs" / "admin.md"
    lines = guide.read_text().splitlines()
    start = lines.index(
        "    # The person's reference in the gallery: the state identification number (SID)."
    )
    example = "\n".join(line.strip() for line in lines[start : lines.index("", start)])
    mapping = parse_mapping(example, "docs/admin.md")
    assert mapping == replace(MAPPING, booking_number=FieldRef(2, 900))


def test_photos_of_several_people_in_one_transaction_follow_their_idc(tmp_path: Path) -> None:
    message = nistitl.Message()
    message[0].TCN = "TCN-2P"
    for idc, sid in ((1, "SID-A"), (2, "SID-B")):
        person = nistitl.AsciiRecord(2)
        person.IDC = idc
        person += nistitl.Field(2, 15, sid)
        message += person
    for idc in (2, 1, 3):
        record = nistitl.AsciiRecord(10)
        record.IDC = idc
        record.IMT = "FACE"
        record.PHD = "20240105"
        record.DATA = jpeg(idc)
        message += record
    photos, refusals = read(tmp_path, bytes(message.NIST))
    assert [(p.origin.rsplit(" ", 1)[-1], p.subject_ref) for p in photos] == [
        ("#1", "SID-B"),
        ("#2", "SID-A"),
    ]
    assert [r.reason for r in refusals] == [
        "the transaction has 2 Type-2 records and none has this photo's IDC (10.002) 3"
    ]
