"""docs/audit-format.md stays true: its example bytes, hashes, note and key are recomputed
here, and its by-hand verification script is run on real exports."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from candor.audit import (
    Checkpoint,
    KeyRing,
    VerifierKey,
    build_entry,
    leaf_hash,
    merkle_root,
    node_hash,
    open_checkpoint,
    write_export,
)

from .support import fixed_key, standard_log
from .test_entries import example_entry

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-format.md"
DOC_KEY = fixed_key("candor.example/docs", seed="candor docs example")


def code_blocks() -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def block_starting(prefix: str) -> str:
    return next(block for block in code_blocks() if block.startswith(prefix))


def second_entry() -> bytes:
    return build_entry(
        seq=2,
        time=datetime(2026, 11, 27, 8, 51, 2, 5, tzinfo=UTC),
        actor="bob",
        action="candidate.review",
        objects={"search": 12, "candidate": 301},
        details={"verdict": "possible_lead"},
        prev_hex=leaf_hash(example_entry()).hex(),
    )


def test_worked_example_bytes_and_hashes() -> None:
    text = DOC.read_text(encoding="utf-8")
    first, second = example_entry(), second_entry()
    assert block_starting('{"action":"search.run"') == first.decode() + "\n"
    assert f"exactly these {len(first)} bytes" in text
    assert block_starting('{"action":"candidate.review"') == second.decode() + "\n"
    assert leaf_hash(first).hex() + "\n" in code_blocks()
    assert f"with leaf hash `{leaf_hash(second).hex()}`" in text
    root = merkle_root([leaf_hash(first), leaf_hash(second)])
    assert root == node_hash(leaf_hash(first), leaf_hash(second))
    assert f"`{root.hex()}`" in text


def test_checkpoint_example_and_verifier_key() -> None:
    note = block_starting("candor.example/docs\n")
    vkey = block_starting("candor.example/docs+").strip()
    assert vkey == DOC_KEY.verifier_key()
    checkpoint = open_checkpoint(note, vkey)
    assert checkpoint.root == merkle_root([leaf_hash(example_entry()), leaf_hash(second_entry())])
    # Ed25519 signatures are deterministic, so the documented note is exactly what we sign.
    assert note == DOC_KEY.sign(
        Checkpoint(origin=DOC_KEY.name, size=2, root=checkpoint.root, time=checkpoint.time)
    )


def run_doc_script(*args: Path) -> subprocess.CompletedProcess[str]:
    script = block_starting("import base64, hashlib, json, sys")
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def export(tmp_path: Path) -> Path:
    entries, notes = standard_log()
    write_export(tmp_path / "export", entries, notes, fixed_key().verifier_key(), witness=notes[-1])
    return tmp_path / "export"


def test_the_by_hand_script_accepts_a_good_export(export: Path) -> None:
    done = run_doc_script(export, export / "checkpoints" / "100.note")
    assert done.returncode == 0, done.stderr
    assert "OK: 330 entries, 3 checkpoint sizes verified" in done.stdout


def test_the_by_hand_script_rejects_tampering(export: Path, tmp_path: Path) -> None:
    held = tmp_path / "300.note"
    held.write_bytes((export / "checkpoints" / "300.note").read_bytes())
    lines = (export / "entries.jsonl").read_bytes().split(b"\n")
    (export / "entries.jsonl").write_bytes(b"\n".join([*lines[:250], b""]))
    (export / "checkpoints" / "300.note").unlink()
    done = run_doc_script(export)  # the export's own witness gives the cut away
    assert done.returncode != 0 and "not among its notes" in done.stderr
    # With an older note passed off as the witness, only the held note catches it.
    (export / "witness.note").write_bytes((export / "checkpoints" / "200.note").read_bytes())
    assert run_doc_script(export).returncode == 0
    done = run_doc_script(export, held)
    assert done.returncode != 0 and "cut off" in done.stderr
    (export / "entries.jsonl").write_bytes(b"\n".join([*lines[:40], *lines[41:250], b""]))
    done = run_doc_script(export)
    assert done.returncode != 0 and "chain breaks at 41" in done.stderr


def test_the_by_hand_script_follows_a_key_rotation(tmp_path: Path) -> None:
    entries, notes = standard_log()
    old, new = fixed_key(), fixed_key(seed="the next key")
    keys = KeyRing.single(old.verifier_key()).rotated(VerifierKey.parse(new.verifier_key()), 200)
    resigned = [
        note if open_checkpoint(note, old.verifier_key()).size < 200
        else new.sign(open_checkpoint(note, old.verifier_key()))
        for note in notes
    ]  # fmt: skip
    write_export(tmp_path / "export", entries, resigned, keys, witness=resigned[-1])
    done = run_doc_script(tmp_path / "export")
    assert done.returncode == 0, done.stderr
    # The old key may not sign past its last size.
    late = old.sign(open_checkpoint(notes[-1], old.verifier_key()))
    (tmp_path / "export" / "checkpoints" / "300.note").write_text(late, encoding="utf-8")
    (tmp_path / "export" / "witness.note").write_text(late, encoding="utf-8")
    assert run_doc_script(tmp_path / "export").returncode != 0
