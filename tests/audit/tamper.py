"""What the issue's attacker did to a workspace's log, with the database and nothing else
(sqlite3 on SQLite, a client on PostgreSQL): `home` is the workspace's folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from candor.audit import SigningKey, canonical_entry, parse_entry
from tests.support import raw_sql

ENTRIES_FILE = "entries.jsonl"


def rewrite_and_relink(home: Path, seq: int, actor: str = "mallory") -> None:
    """Change entry `seq`'s actor and re-link every later entry, so the chain holds."""
    query = "SELECT seq, body FROM audit_entries WHERE seq >= ? ORDER BY seq"
    _, rows = raw_sql(home, query, seq - 1)
    prev = None
    for number, body in rows:
        entry = parse_entry(bytes(body))  # type: ignore[call-overload]
        if number == seq:
            entry["actor"] = actor
        if prev is not None:
            entry["prev"] = prev
        new_body = canonical_entry(entry)
        prev = hashlib.sha256(b"\x00" + new_body).hexdigest()
        update = "UPDATE audit_entries SET body = ?, leaf_hash = ? WHERE seq = ?"
        raw_sql(home, update, new_body, prev, number)


def delete_checkpoints(home: Path, above: int = -1) -> int:
    """Delete every checkpoint row of a tree size above `above`; return how many."""
    return raw_sql(home, "DELETE FROM audit_checkpoints WHERE tree_size > ?", above)[0]


def cut_log(home: Path, entries: int) -> int:
    """Delete the last `entries` entries and the checkpoints that cover them; return the
    number of entries left."""
    ((last,),) = raw_sql(home, "SELECT max(seq) FROM audit_entries")[1]
    keep = int(str(last)) - entries
    raw_sql(home, "DELETE FROM audit_entries WHERE seq > ?", keep)
    delete_checkpoints(home, keep)
    return keep


def stored_log(home: Path) -> tuple[list[bytes], list[tuple[int, str]]]:
    _, bodies = raw_sql(home, "SELECT body FROM audit_entries ORDER BY seq")
    _, notes = raw_sql(home, "SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size")
    entries = [bytes(body) for (body,) in bodies]  # type: ignore[call-overload]
    return entries, [(int(str(size)), str(note)) for size, note in notes]


def export_by_hand(home: Path, key_path: Path, directory: Path) -> Path:
    """The export an attacker without the key writes from the database: its entries, the
    checkpoint notes left in it, the public key, and the witness kept beside the key."""
    entries, notes = stored_log(home)
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
