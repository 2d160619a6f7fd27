"""`make demo`: Candor's mechanics, end to end, on two public-domain portraits.

Runs unattended and can be run again. It makes a `demo` workspace in .candor-demo/,
prepares probe photos from two portraits that installed packages carry (NASA's photo of
astronaut Eileen Collins from scikit-image, and the US Navy's portrait of Grace Hopper
from matplotlib), and runs the real `candor` commands on them, printing each one. Nothing
comes from the network or from ../shared. Two people show the mechanics, not accuracy.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter
from rich.console import Console
from rich.rule import Rule

console = Console(highlight=False)
DEMO_ROOT = Path(os.environ.get("CANDOR_DEMO_DIR", ".candor-demo")).absolute()
WORKSPACE = DEMO_ROOT / "workspace"
PHOTOS = DEMO_ROOT / "photos"
PROVENANCE = [
    "--source", "demo",
    "--source-ref", "public-domain portraits shipped in scikit-image and matplotlib",
    "--legal-basis", "public domain (US government works); demonstration only",
    "--collected", "2024-01-01",
    "--retain-until", "2030-12-31",
]  # fmt: skip


def say(text: str) -> None:
    """A paragraph of explanation for the newcomer."""
    console.print(" ".join(text.split()), style="cyan")
    console.print()


def candor(*args: str, expect_failure: bool = False) -> str:
    """Run one real `candor` command, show it and its output, and return its stdout."""
    shown = " ".join(shlex.quote(a.replace(str(DEMO_ROOT), ".candor-demo")) for a in args)
    console.print(f"[bold]$ candor {shown}[/]")
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "candor", *args],
        env={**os.environ, "CANDOR_HOME": str(WORKSPACE), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        check=False,
    )
    # Progress bars and errors (stderr) come before the results they precede.
    if completed.stderr.strip():
        sys.stdout.write(completed.stderr)
    sys.stdout.write(completed.stdout)
    failed = completed.returncode != 0
    if failed != expect_failure:
        raise SystemExit(
            f"demo stopped: `candor {shown}` exited {completed.returncode}, "
            f"expected {'failure' if expect_failure else 'success'}"
        )
    console.print()
    return completed.stdout


def prepare_photos() -> dict[str, Path]:
    """The two portraits and variants of them: crops, scale, light, blur, a pair."""
    PHOTOS.mkdir(parents=True, exist_ok=True)
    astronaut = _packaged_portrait("skimage", "data/astronaut.png")
    hopper = _packaged_portrait("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")
    variants = {
        "collins.png": astronaut,
        "hopper.jpg": hopper,
        # Tighter crop, smaller and brighter: a different photo of the same face.
        "collins-probe.jpg": ImageEnhance.Brightness(
            astronaut.crop((100, 0, 400, 300)).resize((240, 240))
        ).enhance(1.3),
        # Darker, cropped and slightly soft.
        "hopper-probe.jpg": ImageEnhance.Brightness(hopper.crop((60, 40, 460, 480)))
        .enhance(0.7)
        .filter(ImageFilter.GaussianBlur(1)),
        # Too blurred for the quality gate.
        "hopper-blurred.png": hopper.filter(ImageFilter.GaussianBlur(6)),
        "two-people.jpg": _side_by_side(
            astronaut.crop((100, 0, 400, 300)), hopper.crop((60, 40, 460, 480)).resize((300, 330))
        ),
    }
    paths = {}
    for name, image in variants.items():
        path = PHOTOS / name
        image.save(path, quality=92) if name.endswith(".jpg") else image.save(path)
        paths[name] = path
    return paths


def _packaged_portrait(package: str, resource: str) -> Image.Image:
    """A portrait file shipped inside an installed package, as RGB."""
    data = files(package).joinpath(resource).read_bytes()
    return Image.open(io.BytesIO(data)).convert("RGB")


def _side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (left.width + right.width + 40, max(left.height, right.height)))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 40, 0))
    return canvas


def fresh_workspace() -> None:
    """Remove the previous demo workspace (only a demo one) so the demo can run again."""
    marker = WORKSPACE / "candor-workspace.json"
    if WORKSPACE.exists():
        if not marker.is_file() or json.loads(marker.read_text()).get("purpose") != "demo":
            raise SystemExit(f"{WORKSPACE} exists and is not a demo workspace; not touching it")
        shutil.rmtree(WORKSPACE)


def main() -> None:
    console.print(Rule("Candor demo: the mechanics of accountable face search"))
    say(
        """Candor searches a lawfully held gallery for faces like the one in a probe photo and
        returns a ranked candidate list: investigative leads, never identifications. This
        demo uses two public-domain portraits shipped inside installed Python packages
        (astronaut Eileen Collins and Rear Admiral Grace Hopper) and variants made from
        them. Two people show how it works; they say nothing about accuracy."""
    )
    fresh_workspace()
    photos = prepare_photos()
    p = {name: str(path) for name, path in photos.items()}

    say("""A workspace is one folder with a fixed purpose. Demo data may only enter a 'demo'
        workspace, under the source type 'demo'.""")
    candor("init", "--purpose", "demo")

    say("""Enrolment records where each photo came from and on what authority it is held.
        The portrait of Collins shows a second, false 'face' on her suit: bulk enrolment
        takes the largest face nearest the centre and records that choice.""")
    candor("enrol", p["collins.png"], "--subject", "DEMO-0001", *PROVENANCE)
    candor("enrol", p["hopper.jpg"], "--subject", "DEMO-0002", *PROVENANCE)
    say("Enrolling the same image again changes nothing, and says so.")
    candor("enrol", p["hopper.jpg"], "--subject", "DEMO-0002", *PROVENANCE)
    candor("show", "DEMO-0001")

    say("""A search with a different photo of Collins (cropped, smaller, brighter). The score
        is the cosine similarity of the two face templates: higher means more alike.""")
    candor("search", p["collins-probe.jpg"], "--top", "2")

    say("""A photo that is too blurred is refused by the quality gate, with its reasons,
        rather than searched.""")
    candor("search", p["hopper-blurred.png"], expect_failure=True)

    say("""A photo with two faces is not searched until the analyst says which face is meant.""")
    candor("search", p["two-people.jpg"], expect_failure=True)
    candor("search", p["two-people.jpg"], "--face", "1", "--top", "2")

    say("""Verification compares two photos (1:1) against a threshold whose meaning was
        measured on a labelled dataset and is printed beside it.""")
    candor("verify", p["hopper.jpg"], p["hopper-probe.jpg"])
    candor("verify", p["hopper.jpg"], p["collins-probe.jpg"])

    say("""Expungement removes a person's images, face crops, templates and index entries,
        and scrubs the database so no copy survives in free pages or the write-ahead log.
        A search for Hopper afterwards finds only the other person, with a low score.""")
    candor("expunge", "DEMO-0002", "--yes")
    candor("search", p["hopper-probe.jpg"], "--top", "2")
    candor("subjects")

    console.print(Rule("What you saw"))
    say(
        f"""A demo workspace at {WORKSPACE} was made, two portraits were enrolled with their
        provenance, a duplicate was recognised, probes were searched and verified, a blurred
        photo was refused, a two-face photo needed a choice, and one person was expunged.
        These are the mechanics only: with two people, no figure here says anything about
        accuracy. Accuracy on labelled data is measured by bench/accuracy_lfw.py."""
    )
    say(
        """To start a real workspace: `candor init --home /srv/candor` (purpose operational),
        then `export CANDOR_HOME=/srv/candor` and enrol lawfully held photos with their
        provenance, e.g. `candor enrol photo.jpg --subject BOOKING-123 --source booking_photo
        --source-ref RECORD-9 --legal-basis "..." --collected 2026-01-05 --retain-until
        2033-01-05`. Operational workspaces accept booking photos, consented enrolments and
        court orders only. Searches are not yet governed by users, policy and audit: that is
        the next step, and no operational use should precede it."""
    )


if __name__ == "__main__":
    main()
