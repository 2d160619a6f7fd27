"""The export an auditor receives, the stand-alone verifier, and what it may import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from candor.audit import AuditError, leaf_hash, open_checkpoint, verify_export, write_export
from candor.audit.verifier import main

from .support import fixed_key, standard_log

KEY = fixed_key()
VKEY = KEY.verifier_key()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    entries, notes = standard_log()
    directory = tmp_path / "export"
    write_export(directory, entries, notes, VKEY, witness=notes[-1])
    return directory


def test_export_layout_is_exact(export: Path) -> None:
    entries, notes = standard_log()
    assert (export / "entries.jsonl").read_bytes() == b"".join(raw + b"\n" for raw in entries)
    assert sorted(p.name for p in (export / "checkpoints").iterdir()) == [
        "100.note",
        "200.note",
        "300.note",
    ]
    assert (export / "checkpoints" / "200.note").read_text(encoding="utf-8") == notes[1]
    assert (export / "audit.vkey").read_text() == VKEY + "\n"
    # A log that never rotated its key has a key ring of that one key.
    assert (export / "audit.keys").read_text() == VKEY + "\n"
    assert (export / "witness.note").read_text(encoding="utf-8") == notes[-1]


def test_export_verifies(export: Path) -> None:
    report = verify_export(export)
    assert report.ok and report.checkpoints == 3 and report.unchecked_tail[0] == 301


def test_write_export_refuses_bad_input(tmp_path: Path) -> None:
    entries, notes = standard_log()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(AuditError, match="not empty"):
        write_export(tmp_path / "full", entries, notes, VKEY, witness=notes[-1])
    with pytest.raises(AuditError, match="holds a newline"):
        write_export(tmp_path / "a", [entries[0] + b"\n"], notes[:1], VKEY, witness=notes[0])
    other = fixed_key(seed="other")
    forged = other.sign(open_checkpoint(notes[0], VKEY))
    with pytest.raises(AuditError, match="no signature by"):
        write_export(tmp_path / "b", entries, [forged], VKEY, witness=notes[-1])
    with pytest.raises(AuditError, match="witness was rejected"):
        write_export(tmp_path / "c", entries, notes, VKEY, witness=forged)
    with pytest.raises(AuditError, match="not among the notes"):
        write_export(tmp_path / "d", entries, notes[:2], VKEY, witness=notes[-1])
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_verify_export_against_held_note_files(export: Path, tmp_path: Path) -> None:
    held = tmp_path / "kept-200.note"
    held.write_text((export / "checkpoints" / "200.note").read_text())
    assert verify_export(export, [held]).held == 1
    # Now cut the log and its checkpoints back to 150 entries.
    lines = (export / "entries.jsonl").read_bytes().split(b"\n")
    (export / "entries.jsonl").write_bytes(b"\n".join(lines[:150]) + b"\n")
    for size in (200, 300):
        (export / "checkpoints" / f"{size}.note").unlink()
    # The export's witness (the checkpoint of size 300) alone catches the cut...
    report = verify_export(export)
    assert not report.ok and report.first_bad_seq == 151
    assert "the witness" in (report.problem or "")
    # ...and without the witness, the note the auditor held does.
    (export / "witness.note").unlink()
    report = verify_export(export, [held])
    assert not report.ok and "no witness.note" in (report.problem or "")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "entries.jsonl").unlink(), "cannot read"),
        (lambda d: (d / "audit.vkey").write_text(VKEY + "\nmore\n"), "exactly one line"),
        (lambda d: (d / "audit.vkey").unlink(), "cannot read"),
        (lambda d: (d / "checkpoints" / "notes.txt").write_text("x"), "named <size>.note"),
        (
            lambda d: (d / "checkpoints" / "200.note").rename(d / "checkpoints" / "201.note"),
            "named for size 201 but holds size 200",
        ),
        (
            lambda d: (d / "entries.jsonl").write_bytes((d / "entries.jsonl").read_bytes()[:-1]),
            "does not end with a newline",
        ),
        (lambda d: (d / "checkpoints" / "100.note").write_bytes(b"\xff\n"), "not UTF-8"),
        (lambda d: (d / "witness.note").unlink(), "no witness.note"),
        (lambda d: (d / "checkpoints" / "300.note").unlink(), "no checkpoint of size 300"),
        (lambda d: (d / "audit.keys").write_text("x\n"), "audit.keys was rejected"),
    ],
)
def test_damaged_exports_are_reported(export: Path, damage: object, message: str) -> None:
    damage(export)  # type: ignore[operator]
    report = verify_export(export)
    assert not report.ok
    assert message in (report.problem or "")


def test_command_line_ok_and_failure(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(export)]) == 0
    out = capsys.readouterr().out
    assert "result:             OK" in out and "entries 301..330 (30)" in out
    assert "--against" in out
    raw = (export / "entries.jsonl").read_bytes()
    (export / "entries.jsonl").write_bytes(raw.replace(b"C-2026-00042", b"C-2026-00043"))
    held = export.parent / "held.note"
    held.write_text((export / "checkpoints" / "100.note").read_text())
    assert main([str(export), "--against", str(held)]) == 1
    out = capsys.readouterr().out
    assert "first bad entry:    seq 42" in out and "result:             FAILED" in out


# What an outside auditor runs: the verifier with only the standard library and
# cryptography importable. A finder refuses every other third-party package we use.
ISOLATED = textwrap.dedent(
    """
    import importlib.abc, runpy, sys

    FORBIDDEN = {"rfc8785", "sqlalchemy", "numpy", "dlib", "PIL", "alembic", "typer",
                 "rich", "argon2", "platformdirs", "hypothesis", "face_recognition_models"}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"{name} is not available to the auditor")
            return None

    sys.meta_path.insert(0, Refuse())
    sys.argv = ["verifier", *sys.argv[1:]]
    try:
        runpy.run_module("candor.audit.verifier", run_name="__main__")
    except SystemExit as done:
        loaded = sorted(m for m in sys.modules if m == "candor" or m.startswith("candor."))
        print("LOADED", " ".join(loaded))
        raise
    """
)


def run_isolated(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ISOLATED, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )


def test_the_verifier_runs_with_only_the_stdlib_and_cryptography(export: Path) -> None:
    done = run_isolated(str(export))
    assert done.returncode == 0, done.stderr
    assert "result:             OK" in done.stdout
    loaded = done.stdout.split("LOADED ", 1)[1].split()
    allowed = {
        "candor",
        "candor.audit",
        "candor.audit.canonical",
        "candor.audit.entries",
        "candor.audit.errors",
        "candor.audit.export",
        "candor.audit.keyring",
        "candor.audit.merkle",
        "candor.audit.notes",
        "candor.audit.verification",
        "candor.audit.verifier",
        "candor.audit.witness",
    }
    assert set(loaded) <= allowed, set(loaded) - allowed


def test_the_isolated_verifier_fails_a_tampered_export(export: Path) -> None:
    lines = (export / "entries.jsonl").read_bytes().split(b"\n")
    del lines[10]
    (export / "entries.jsonl").write_bytes(b"\n".join(lines))
    done = run_isolated(str(export))
    assert done.returncode == 1
    assert "first bad entry:    seq 11" in done.stdout


def test_importing_the_verifier_pulls_in_no_other_part() -> None:
    code = (
        "import sys, candor.audit.verifier\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'rfc8785','sqlalchemy','numpy','dlib','PIL'} or "
        "(m.startswith('candor.') and not m.startswith('candor.audit'))]\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_leaf_hashes_of_the_export_are_those_of_the_entries(export: Path) -> None:
    entries, _ = standard_log()
    lines = (export / "entries.jsonl").read_bytes().split(b"\n")[:-1]
    assert [leaf_hash(line) for line in lines] == [leaf_hash(raw) for raw in entries]
