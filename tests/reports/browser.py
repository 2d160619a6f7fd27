"""Headless Chromium (Debian's `chromium`) for report tests and screenshots."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_missing_message() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return None
    return f"{CHROMIUM} not found (apt-get install chromium)"


def _run(page: Path, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="candor-chromium-") as profile:
        completed = subprocess.run(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(f"chromium exited {completed.returncode}: {completed.stderr[-2000:]}")
    return completed.stdout


def rendered_dom(page: Path) -> str:
    """The page's DOM after Chromium has loaded and laid it out."""
    return _run(page, "--dump-dom")


def screenshot(page: Path, target: Path, *, width: int = 1280, height: int = 1600) -> Path:
    """A PNG of the page's first `height` pixels at `width`."""
    _run(page, f"--screenshot={target}", f"--window-size={width},{height}",
         "--hide-scrollbars")  # fmt: skip
    if not target.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {target}")
    return target
