"""The command line refuses control characters in text by the workflow's one rule
(workflow/limits.py): one line naming the field, never a traceback or a database error."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from candor.cli.app import app
from tests.agency import PASSWORD, make_agency
from tests.server.support import CASE, demo_photos

runner = CliRunner()


def test_a_control_character_in_a_case_number_is_one_line_naming_the_field(
    tmp_path: Path,
) -> None:
    agency = make_agency(tmp_path, purpose="demo")
    agency.workflow.close()
    env = {"CANDOR_HOME": str(agency.workflow.workspace.home), "CANDOR_PASSWORD": PASSWORD}
    assert runner.invoke(app, ["login", "--user", "ana"], env=env).exit_code == 0
    photo = demo_photos(tmp_path / "photos")["collins-probe.jpg"]
    for case, code_point in (("2026\x1b[2J-1", "U+001B"), ("2026\x00-1", "U+0000")):
        result = runner.invoke(
            app,
            ["search", str(photo), "--case", case, "--offence", CASE["offence_category"],
             "--purpose", CASE["purpose"], "--agency", CASE["requesting_agency"],
             "--unit", CASE["requesting_unit"]],
            env=env,
        )  # fmt: skip
        assert result.exit_code == 1
        assert result.stderr.startswith("candor: error: the case number (case_number) has a")
        assert code_point in result.stderr and result.stderr.count("\n") == 1
