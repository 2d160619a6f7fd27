"""The CSV manifest reader: every row checked, each refusal naming its row and field, and a
file that is not a manifest refused as a whole, naming the file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from candor.imports.errors import ImportFileError
from candor.imports.manifest import read_manifest
from candor.imports.records import ImportedPhoto

HEADER = "path,subject,source_ref,collected,retain_until,legal_basis,booking_number\n"


def export(tmp_path: Path, rows: str, header: str = HEADER) -> Path:
    """An export folder with photos a.jpg, b.jpg and c.jpg and the manifest given."""
    folder = tmp_path / "export"
    (folder / "photos").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (folder / "photos" / f"{name}.jpg").write_bytes(b"a photo")
    (folder / "photos" / "sub").mkdir()
    manifest = folder / "intake.csv"
    manifest.write_text(header + rows, encoding="utf-8")
    return manifest


def test_a_good_manifest_gives_each_photo_its_own_row(tmp_path: Path) -> None:
    manifest = export(
        tmp_path,
        "photos/a.jpg,P-1,TCN 1,2021-01-02,2030-01-01,State Code 12,B-77\n"
        "\n"  # a blank line is skipped, and still counts as a row of the file
        ' photos/b.jpg , P-2 ,"TCN 2, amended",2022-03-04,,,\n',
    )
    photos, refusals = read_manifest(manifest)
    assert refusals == []
    folder = manifest.parent.resolve()
    assert photos == [
        ImportedPhoto(
            origin="intake.csv row 2",
            subject_ref="P-1",
            source_ref="TCN 1",
            collected_on=date(2021, 1, 2),
            retain_until=date(2030, 1, 1),
            legal_basis="State Code 12",
            booking_number="B-77",
            path=folder / "photos/a.jpg",
        ),
        ImportedPhoto(
            origin="intake.csv row 4",
            subject_ref="P-2",
            source_ref="TCN 2, amended",
            collected_on=date(2022, 3, 4),
            retain_until=None,
            legal_basis=None,
            booking_number=None,
            path=folder / "photos/b.jpg",
        ),
    ]


def test_each_bad_row_is_refused_naming_its_row_and_field(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(b"a photo")
    rows = [
        "photos/a.jpg,P-1,TCN 1,2021-01-02,2030-01-01,basis,",  # row 2: good
        "photos/b.jpg,P-2,TCN 2,2021-01-02",  # row 3: too few fields
        "photos/b.jpg,,TCN 3,2021-01-02,2030-01-01,basis,",  # row 4: blank subject
        "photos/b.jpg,P-4,,2021-01-02,2030-01-01,basis,",  # row 5: blank source_ref
        ",P-5,TCN 5,2021-01-02,2030-01-01,basis,",  # row 6: blank path
        "photos/b.jpg,P-6,TCN 6,02/01/2021,2030-01-01,basis,",  # row 7: not ISO
        "photos/b.jpg,P-7,TCN 7,2021-02-30,2030-01-01,basis,",  # row 8: no such day
        "photos/b.jpg,P-8,TCN 8,2021-W01-1,2030-01-01,basis,",  # row 9: a week date
        "photos/b.jpg,P-9,TCN 9,2021-01-02,2020-01-01,basis,",  # row 10: retain before
        "photos/missing.jpg,P-10,TCN 10,2021-01-02,2030-01-01,basis,",  # row 11
        "photos/sub,P-11,TCN 11,2021-01-02,2030-01-01,basis,",  # row 12: a folder
        "../elsewhere.jpg,P-12,TCN 12,2021-01-02,2030-01-01,basis,",  # row 13: escapes
        f"{outside},P-13,TCN 13,2021-01-02,2030-01-01,basis,",  # row 14: absolute
        "photos/./a.jpg,P-14,TCN 14,2021-01-02,2030-01-01,basis,",  # row 15: row 2's
        f"photos/c.jpg,P-15,{'T' * 10_001},2021-01-02,2030-01-01,basis,",  # row 16: huge
        "photos/c.jpg,P-16,TCN 16,2021-01-02,2030-01-01,basis,",  # row 17: good
    ]
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "link.jpg").symlink_to(outside)
    rows.append("link.jpg,P-17,TCN 17,2021-01-02,2030-01-01,basis,")  # row 18: link out
    manifest = export(tmp_path, "\n".join(rows) + "\n")
    photos, refusals = read_manifest(manifest)
    assert [photo.origin for photo in photos] == ["intake.csv row 2", "intake.csv row 17"]
    reasons = {refusal.origin: refusal.reason for refusal in refusals}
    expected = {
        3: "the row has 4 field(s); the header has 7",
        4: "field subject: blank",
        5: "field source_ref: blank",
        6: "field path: blank",
        7: "field collected: '02/01/2021' is not a date in YYYY-MM-DD form",
        8: "field collected: '2021-02-30' is not a date",
        9: "field collected: '2021-W01-1' is not a date",
        10: "field retain_until: 2020-01-01 is before the collection date 2021-01-02",
        11: "field path: 'photos/missing.jpg' does not exist",
        12: "field path: 'photos/sub' is not a file",
        13: "field path: '../elsewhere.jpg' leads outside the manifest's folder",
        14: "is an absolute path",
        15: "field path: 'photos/./a.jpg' is the photo of row 2 already",
        16: "field source_ref: 10,001 characters; at most 10,000 are read",
        18: "field path: 'link.jpg' leads outside the manifest's folder",
    }
    assert set(reasons) == {f"intake.csv row {number}" for number in expected}
    for number, reason in expected.items():
        assert reason in reasons[f"intake.csv row {number}"], number


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"path,subject\n", "lacks the column(s) source_ref, collected, retain_until"),
        (HEADER.encode(), "has a header but no rows"),
        (HEADER.replace("subject", "subjet").encode(), "unknown column(s) 'subjet'"),
        (b"path,path," + HEADER.encode(), "names path more than once"),
        (
            HEADER.encode() + b"caf\xe9.jpg,P-1,T,,,,\n",
            f"is not UTF-8 text (byte {len(HEADER) + 4})",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not UTF-8 text"),
        (HEADER.encode() + b"a.jpg,P\x00,T,,,,\n", "is not a CSV file (it holds NUL bytes)"),
        (HEADER.encode() + b'"a.jpg,P-1,T,,,,\n', "is not a CSV file the reader can take"),
    ],
)
def test_a_file_that_is_not_a_manifest_is_refused_naming_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    manifest = tmp_path / "intake.csv"
    manifest.write_bytes(content)
    with pytest.raises(ImportFileError) as refused:
        read_manifest(manifest)
    assert str(refused.value).startswith(f"the manifest {manifest}")
    assert problem in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_manifest_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="does not exist"):
        read_manifest(tmp_path / "nothing.csv")
    with pytest.raises(ImportFileError, match="is not a file"):
        read_manifest(tmp_path)


def test_a_spreadsheet_export_with_a_byte_order_mark_and_crlf_reads(tmp_path: Path) -> None:
    manifest = export(tmp_path, "photos/a.jpg,P-1,TCN 1,2021-01-02,,,\r\n")
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes().replace(b"\n", b"\r\n"))
    photos, refusals = read_manifest(manifest)
    assert (len(photos), refusals) == (1, [])


def test_a_field_with_a_unicode_line_separator_stays_in_its_row(tmp_path: Path) -> None:
    manifest = export(tmp_path, "photos/a.jpg,P-1,TCN\u2028 1,2021-01-02,,basis\x85 12,\n")
    photos, refusals = read_manifest(manifest)
    assert refusals == []
    assert [(photo.source_ref, photo.legal_basis) for photo in photos] == [
        ("TCN\u2028 1", "basis\x85 12")
    ]


def test_the_example_in_the_admin_guide_reads(tmp_path: Path) -> None:
    guide = Path(__file__).resolve().parents[2] / "docs" / "admin.md"
    lines = guide.read_text().splitlines()
    start = lines.index("    " + HEADER.strip())
    example = [line.strip() for line in lines[start : lines.index("", start)]]
    (tmp_path / "photos").mkdir()
    for name in ("0001.jpg", "0002.jpg"):
        (tmp_path / "photos" / name).write_bytes(b"a photo")
    (tmp_path / "intake.csv").write_text("\n".join(example) + "\n")
    photos, refusals = read_manifest(tmp_path / "intake.csv")
    assert refusals == []
    assert [(p.subject_ref, p.booking_number, p.legal_basis) for p in photos] == [
        ("SID-448812", "B-77120", "State Code 12.4"),
        ("SID-501177", "B-77121", None),
    ]


def test_a_manifest_that_cannot_be_read_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = export(tmp_path, "photos/a.jpg,P-1,TCN 1,2021-01-02,,,\n")

    def refused(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    # As root in the tests' container a chmod 000 file still reads; the refusal is made so.
    monkeypatch.setattr(Path, "read_bytes", refused)
    with pytest.raises(ImportFileError) as error:
        read_manifest(manifest)
    assert str(error.value) == f"the manifest {manifest} cannot be read (Permission denied)"
