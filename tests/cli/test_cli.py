"""The `candor` command line as a user meets it: exit codes, one-line errors, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candor.cli.app import app
from tests.support import people_with_photos, photos_of

runner = CliRunner()

PROVENANCE = [
    "--source",
    "evaluation",
    "--source-ref",
    "lfw-dev (tests)",
    "--legal-basis",
    "research use under the LFW terms",
    "--collected",
    "2007-01-01",
    "--retain-until",
    "2099-01-01",
]


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args], env={"CANDOR_HOME": str(home)})
    return result.exit_code, result.stdout, result.stderr


def test_init_makes_a_workspace_and_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    code, out, _ = run(home, "init", "--purpose", "evaluation", "--json")
    assert code == 0
    assert json.loads(out)["purpose"] == "evaluation"

    code, out, err = run(home, "init", "--json")
    assert code == 1
    assert json.loads(out)["ok"] is False
    assert "not empty" in err


def test_commands_refuse_a_folder_that_is_not_a_workspace(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    code, out, err = run(tmp_path / "plain", "subjects")
    assert code == 1
    assert "not a Candor workspace" in err
    assert "candor init" in err
    assert out == ""
    assert list((tmp_path / "plain").iterdir()) == []


def test_bad_date_and_unknown_source_are_one_line_errors(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    run(home, "init", "--purpose", "evaluation")
    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"not a photo")
    code, _, err = run(
        home,
        "enrol",
        str(photo),
        "--subject",
        "S1",
        *PROVENANCE[:6],
        "--collected",
        "yesterday",
        "--retain-until",
        "2099-01-01",
    )
    assert code == 1
    assert "--collected 'yesterday' is not a date" in err
    bad_source = ["--source", "scraped_web", *PROVENANCE[2:]]
    code, out, err = run(home, "enrol", str(photo), "--subject", "S1", *bad_source, "--json")
    assert code == 1
    assert "unknown source type 'scraped_web'" in json.loads(out)["error"]


def test_expunge_needs_confirmation(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    run(home, "init", "--purpose", "evaluation")
    code, _, err = run(home, "expunge", "S1")
    assert code == 1
    assert "--yes" in err


@pytest.mark.faces
@pytest.mark.xdist_group("workflow")
def test_enrol_search_verify_show_expunge_with_json(tmp_path: Path, faces_dir: Path) -> None:
    home = tmp_path / "ws"
    assert run(home, "init", "--purpose", "evaluation")[0] == 0
    people = people_with_photos(faces_dir, 4)
    folders = tmp_path / "gallery"
    for person in people:
        (folders / person.name).mkdir(parents=True)
        (folders / person.name / "photo.jpg").symlink_to(photos_of(person)[0])
    (folders / people[0].name / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")

    code, out, err = run(home, "enrol", str(folders), "--from-folders", *PROVENANCE, "--json")
    assert code == 0, err
    enrolled = json.loads(out)
    assert enrolled["counts"] == {"enrolled": 4, "duplicate": 0, "refused": 1}
    refused = [f for f in enrolled["files"] if f["status"] == "refused"]
    assert refused[0]["path"].endswith("broken.jpg")

    code, out, _ = run(home, "search", str(photos_of(people[3])[1]), "--top", "2", "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["candidates"][0]["subject_ref"] == people[3].name
    assert len(listing["candidates"]) == 2

    code, out, _ = run(
        home, "verify", str(photos_of(people[0])[0]), str(photos_of(people[0])[1]), "--json"
    )
    assert code == 0
    verdict = json.loads(out)
    assert set(verdict) >= {"score", "passed", "threshold"}

    code, out, _ = run(home, "show", people[1].name, "--json")
    assert json.loads(out)["images"][0]["provenance"]["source_type"] == "evaluation"

    code, out, _ = run(home, "expunge", people[1].name, "--yes", "--json")
    assert code == 0
    assert len(json.loads(out)["template_ids"]) == 1
    code, out, _ = run(home, "subjects", "--json")
    assert {s["external_ref"] for s in json.loads(out)["subjects"]} == {
        p.name for p in people if p != people[1]
    }
