"""Build ANSI/NIST-ITL transactions from lfw-dev photos, as a booking system exports them.

One transaction per person (a Type-1 record with its TCN, a Type-2 record with a state
identification number in 2.015 and a booking number in 2.900, one Type-10 FACE record per
photo with its own photo date in 10.005), one after the other in one file, until the file
holds RECORDS face records. With --bad, a second file holds one transaction of each kind
`candor enrol --nist` must refuse (truncated, a false huge length, a record type that is
not what the table of contents says, a non-face image, no subject field, non-image data,
a date that does not parse), between good ones.

    .venv/bin/python bench/make_nist_transactions.py /tmp/bookings.an2 --records 100
    .venv/bin/candor enrol --nist /tmp/bookings.an2 --source evaluation

The photos stay where they are (../shared/faces, or CANDOR_FACES): only the file built
here holds copies of them. The mapping that reads it is the default one plus
booking_number = "2.900".
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from candor.imports.nist import NistPhoto, make_transaction

PHOTOS_PER_PERSON = 4
FIRST_PHOTO_DATE = date(2023, 1, 2)
BOOKING_FIELD = 900


@dataclass(frozen=True)
class Booking:
    """What a transaction says, to check against what was enrolled."""

    tcn: str
    subject: str
    booking_number: str
    photos: tuple[tuple[Path, date], ...]


def bookings(
    faces: Path, records: int, *, first: int = 0, per_person: int = PHOTOS_PER_PERSON
) -> list[Booking]:
    """Transactions of lfw-dev people with two photos or more, RECORDS photos in all.

    first: skip this many such people (lfw-dev has 1,127: another file of other people).
    per_person: at most this many photos in a transaction.
    """
    people = [
        person
        for person in sorted((faces / "lfw-dev").iterdir())
        if person.is_dir() and len(list(person.glob("*.jpg"))) >= 2
    ][first:]
    made: list[Booking] = []
    left = records
    for number, person in enumerate(people, start=first + 1):
        if left <= 0:
            break
        files = sorted(person.glob("*.jpg"))[: min(per_person, left)]
        # A different week for each person, all of them in the past.
        start = FIRST_PHOTO_DATE + timedelta(days=(7 * number) % 630)
        made.append(
            Booking(
                tcn=f"CANDOR{number:06d}",
                subject=f"SID{number:07d}",
                booking_number=f"BK-{number:06d}",
                photos=tuple((file, start + timedelta(days=k)) for k, file in enumerate(files)),
            )
        )
        left -= len(files)
    if left > 0:
        raise SystemExit(f"{faces}/lfw-dev has too few people for {records} photos")
    return made


def transaction_bytes(booking: Booking) -> bytes:
    return make_transaction(
        booking.tcn,
        booking.subject,
        [NistPhoto(path.read_bytes(), taken) for path, taken in booking.photos],
        person_fields={BOOKING_FIELD: booking.booking_number},
    )


def bad_transactions(faces: Path) -> list[tuple[str, bytes]]:
    """(what is wrong, transaction) for each kind of damage, good ones between them."""
    good = [transaction_bytes(b) for b in bookings(faces, 5, first=1000, per_person=1)]
    photo = good[0]
    last_length = re.findall(rb"\x1c10\.001:(\d+)", photo)[-1]
    return [
        ("good", good[1]),
        ("truncated", photo[:-500]),
        ("good", good[2]),
        (
            "huge declared length",
            photo.replace(b"10.001:" + last_length, b"10.001:999999999999", 1),
        ),
        ("good", good[3]),
        ("wrong record type", re.sub(rb"([\x1c\x1d])10\.", rb"\g<1>14.", photo)),
        (
            "non-face image",
            make_transaction(
                "CANDORBAD5",
                "SID9000005",
                [NistPhoto(photo_bytes(faces), FIRST_PHOTO_DATE, "SCAR")],
            ),
        ),
        (
            "no subject field",
            make_transaction("CANDORBAD6", None, [NistPhoto(photo_bytes(faces), FIRST_PHOTO_DATE)]),
        ),
        (
            "non-image data",
            make_transaction(
                "CANDORBAD7", "SID9000007", [NistPhoto(b"%PDF-1.4 not a photo", FIRST_PHOTO_DATE)]
            ),
        ),
        (
            "date that does not parse",
            make_transaction(
                "CANDORBAD8", "SID9000008", [NistPhoto(photo_bytes(faces), FIRST_PHOTO_DATE)]
            ).replace(FIRST_PHOTO_DATE.strftime("10.005:%Y%m%d").encode(), b"10.005:20231341"),
        ),
        ("good", good[4]),
    ]


def photo_bytes(faces: Path) -> bytes:
    return sorted((faces / "lfw-dev").glob("*/*.jpg"))[-1].read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the ANSI/NIST-ITL file to write")
    parser.add_argument("--records", type=int, default=100, help="face records in all")
    parser.add_argument(
        "--faces",
        type=Path,
        default=Path(os.environ.get("CANDOR_FACES", "../shared/faces")),
        help="the shared faces folder (default: CANDOR_FACES or ../shared/faces)",
    )
    parser.add_argument("--bad", type=Path, help="also write the refused transactions here")
    args = parser.parse_args(argv)
    if not (args.faces / "lfw-dev").is_dir():
        parser.error(f"{args.faces}/lfw-dev is not a folder (see ../shared/faces/README.md)")
    made = bookings(args.faces, args.records)
    args.out.write_bytes(b"".join(transaction_bytes(booking) for booking in made))
    print(f"{args.out}: {len(made)} transactions, {args.records} face records")
    if args.bad is not None:
        kinds = bad_transactions(args.faces)
        args.bad.write_bytes(b"".join(content for _, content in kinds))
        print(f"{args.bad}: {', '.join(kind for kind, _ in kinds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
