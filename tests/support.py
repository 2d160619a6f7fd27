"""Helpers shared by the tests: picking real photos, making workspaces, scanning files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from PIL import Image

from candor.store import Provenance


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
