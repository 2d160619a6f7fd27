"""Screenshots of both reports for docs/screenshots/, from a simulation workspace only.

The workspace is synthetic activity (bench/report_workspace.py, purpose `simulation`):
no face image of anyone is involved, and the pages say SIMULATION throughout. Needs
Debian's `chromium` at /usr/bin/chromium. Run: .venv/bin/python bench/report_screenshots.py
"""

from __future__ import annotations

import subprocess
import tempfile
from datetime import date
from pathlib import Path

from candor.reports import (
    UsageQuery,
    transparency_html,
    transparency_report,
    usage_html,
    usage_report,
)
from candor.store import Workspace
from candor.workflow.audit_trail import log_keys
from report_workspace import build

TARGET = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


def screenshot(page: Path, target: Path, height: int) -> None:
    with tempfile.TemporaryDirectory(prefix="candor-chromium-") as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--hide-scrollbars", f"--screenshot={target}", f"--window-size=1280,{height}",
             page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def main() -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="candor-screenshots-") as folder:
        home = Path(folder) / "workspace"
        build(home, searches=1_500, first_day=date(2019, 1, 1), last_day=date(2019, 3, 31),
              purpose="simulation", timezone="America/Chicago")  # fmt: skip
        with Workspace.open(home) as workspace:
            key = str(log_keys(workspace))
            usage = usage_report(workspace, key, UsageQuery(date(2019, 1, 1), date(2019, 3, 31)))
            public = transparency_report(workspace, key, 2019)
        pages = {
            "usage-report": usage_html(usage),
            "transparency-report": transparency_html(public),
        }
        for name, text in pages.items():
            page = Path(folder) / f"{name}.html"
            page.write_text(text, encoding="utf-8")
            screenshot(page, TARGET / f"{name}.png", 1600)
            print(f"wrote {TARGET / f'{name}.png'}")


if __name__ == "__main__":
    main()
