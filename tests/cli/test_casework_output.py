"""What a requester reads at the terminal: reasons with their codes, shown literally."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from candor.cli.accounts import save_token
from candor.cli.app import app
from candor.workflow.accounts import login
from tests.agency import PASSWORD, make_agency
from tests.support import people_with_photos, photos_of


@pytest.mark.faces
@pytest.mark.xdist_group("workflow")
def test_a_denial_prints_each_reason_with_its_code(tmp_path: Path, faces_dir: Path) -> None:
    agency = make_agency(tmp_path, example="moratorium")
    home = agency.workflow.workspace.home
    save_token(home, login(agency.workflow, "ana", PASSWORD).token)
    probe = photos_of(people_with_photos(faces_dir, 1)[0])[1]
    arguments = [
        "search", str(probe), "--case", "2026-1", "--offence", "robbery",
        "--purpose", "investigative_lead", "--agency", "[Sheriff] of Elsewhere",
        "--unit", "Robbery",
    ]  # fmt: skip
    result = CliRunner().invoke(app, arguments, env={"CANDOR_HOME": str(home), "COLUMNS": "200"})
    agency.workflow.close()
    assert result.exit_code == 3
    assert "denied" in result.stdout
    assert "[outside_agency]" in result.stdout
    assert "[Sheriff] of Elsewhere" in result.stdout
    assert "moratorium-example" in result.stdout


def test_table_cells_print_brackets_as_typed() -> None:
    from rich.console import Console
    from rich.table import Table

    from candor.cli.output import add_literal_row

    table = Table()
    table.add_column("agency")
    add_literal_row(table, "[bold]County[/] Sheriff")
    console = Console(width=80, record=True)
    console.print(table)
    assert "[bold]County[/] Sheriff" in console.export_text()
