"""What the issue's attacker did to a workspace's log, with sqlite3 and nothing else."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from candor.audit import SigningKey, canonical_entry, parse_entry

ENTRIES_FILE = "entries.jsonl"


def rewrite_and_relink(database: Path, seq: int, actor: str = "mallory") -> None:
    """Change entry `seq`'s actor and re-link every later entry, so the chain holds."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT seq, body FROM audit_entries WHERE seq >= ? ORDER BY seq", (seq - 1,)
        ).fetchall()
        prev = None
        for number, body in rows:
            entry = parse_entry(bytes(body))
            if number == seq:
                entry["actor"] = actor
            if prev is not None:
                entry["prev"] = prev
            new_body = canonical_entry(entry)
            prev = hashlib.sha256(b"\x00" + new_body).hexdigest()
            connection.execute(
                "UPDATE audit_entries SET body = ?, leaf_hash = ? WHERE seq = ?",
                (new_body, prev, number),
            )


def delete_checkpoints(database: Path, above: int = -1) -> int:
    """Delete every checkpoint row of a tree size above `above`; return how many."""
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "DELETE FROM audit_checkpoints WHERE tree_size > ?", (above,)
        ).rowcount


def cut_log(database: Path, entries: int) -> int:
    """Delete the last `entries` entries and the checkpoints that cover them; return the
    number of entries left."""
    with sqlite3.connect(database) as connection:
        (last,) = connection.execute("SELECT max(seq) FROM audit_entries").fetchone()
        keep = last - entries
        connection.execute("DELETE FROM audit_entries WHERE seq > ?", (keep,))
    delete_checkpoints(database, keep)
    return int(keep)


def stored_log(database: Path) -> tuple[list[bytes], list[tuple[int, str]]]:
    with sqlite3.connect(database) as connection:
        entries = [
            bytes(body)
            for (body,) in connection.execute("SELECT body FROM audit_entries ORDER BY seq")
        ]
        notes = connection.execute(
            "SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size"
        ).fetchall()
    return entries, [(int(size), str(note)) for size, note in notes]


def export_by_hand(database: Path, key_path: Path, directory: Path) -> Path:
    """The export an attacker without the key writes from the database: its entries, the
    checkpoint notes left in it, the public key, and the witness kept beside the key."""
    entries, notes = stored_log(database)
    (directory / "checkpoints").mkdir(parents=True)
    (directory / ENTRIES_FILE).write_bytes(b"".join(entry + b"\n" for entry in entries))
    for size, note in notes:
        (directory / "checkpoints" / f"{size}.note").write_text(note, encoding="utf-8")
    (directory / "audit.vkey").write_text(SigningKey.load(key_path).verifier_key() + "\n")
    witness = key_path.with_name(key_path.name + ".witness")
    if witness.exists():
        note = json.loads(witness.read_text())["checkpoint"]
        (directory / "witness.note").write_text(note, encoding="utf-8")
    return directory
