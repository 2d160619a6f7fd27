"""The pure reconciliation of store rows with log entries: what older entries allow.

Entries written before the log carried candidate rows or password digests can prove
their tables only in part; the result says so rather than failing or claiming more.
"""

from __future__ import annotations

from datetime import UTC, datetime

from candor.audit import build_entry
from candor.store.reconciliation import (
    ReconciledRows,
    StoredCandidate,
    StoredSearch,
    StoredUser,
    password_digest,
)
from candor.workflow.reconciliation import StoreReconciliation, reconcile_tables

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def entries(*steps: tuple[str | None, str, dict[str, object], dict[str, object]]) -> list[bytes]:
    return [
        build_entry(
            seq=seq,
            time=T0,
            actor=actor,
            action=action,
            objects=objects,
            details=details,
            prev_hex="0" * 64,
        )
        for seq, (actor, action, objects, details) in enumerate(steps, start=1)
    ]


def rows(**tables: object) -> ReconciledRows:
    empty: dict[str, object] = {
        name: () for name in ReconciledRows.__dataclass_fields__ if name not in tables
    }
    return ReconciledRows(**empty, **tables)  # type: ignore[arg-type]


def old_search_log(candidates: int) -> list[bytes]:
    """A search run by the code before 2026-06 (no candidate rows in its run entry)."""
    return entries(
        ("ana", "search.requested", {"search": 7, "case": "C-1"}, {}),
        ("ana", "search.run", {"search": 7}, {"candidates": candidates}),
    )


def candidate(candidate_id: int, rank: int, subject: int) -> StoredCandidate:
    return StoredCandidate(candidate_id, 7, rank, subject, subject, subject, False, 0.5, None)


def test_older_candidate_lists_are_checked_partly_and_said_to_be() -> None:
    searches = (StoredSearch(7, "search", 1, "C-1"),)
    held = (candidate(1, 1, 4), candidate(2, 2, 5))
    result = reconcile_tables(old_search_log(2), rows(searches=searches, candidates=held))
    assert [d for d in result.differences if d.table == "candidates"] == []
    assert "candidates" not in {table.table for table in result.proved}
    [partly] = [table for table in result.partly if table.table == "candidates"]
    assert "run before entries listed candidate rows" in partly.what

    fewer = reconcile_tables(old_search_log(3), rows(searches=searches, candidates=held))
    assert [(d.table, d.row, d.column) for d in fewer.differences if d.table == "candidates"] == [
        ("candidates", "search 7", "number of rows")
    ]


def test_a_log_that_cannot_be_replayed_is_named() -> None:
    broken = entries(("ana", "candidate.verdict", {"search": 7}, {}))
    result = reconcile_tables(broken, rows())
    assert [(d.table, d.row) for d in result.differences] == [("audit_entries", "seq 1")]


def test_a_report_that_failed_on_the_log_is_not_reconciled() -> None:
    assert not StoreReconciliation(made=False, why_not="the log itself does not verify").ok


def bootstrap_entry(**extra: object) -> tuple[None, str, dict[str, object], dict[str, object]]:
    details: dict[str, object] = {
        "username": "admin1",
        "display_name": "admin1",
        "unit": "Records",
        "roles": ["admin"],
        "certificate_ref": "FRT-1",
        "certificate_expires": "2030-01-01",
    }
    return None, "user.bootstrap", {"user": 1}, {**details, **extra}


ADMIN1 = StoredUser(
    1,
    "admin1",
    "admin1",
    "Records",
    "FRT-1",
    "2030-01-01",
    False,
    "bootstrap",
    password_digest("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"),
)


def test_an_older_users_password_hash_is_said_to_be_unchecked() -> None:
    result = reconcile_tables(
        entries(bootstrap_entry()), rows(users=(ADMIN1,), roles=((1, "admin"),))
    )
    assert result.ok
    [users] = [table for table in result.partly if table.table == "users"]
    assert "the password hash of 1 user (admin1)" in users.what
    assert "user_roles" in {table.table for table in result.proved}


def test_a_recorded_password_digest_proves_the_hash() -> None:
    recorded = entries(bootstrap_entry(password_sha256=ADMIN1.password_digest))
    assert "users" in {
        t.table
        for t in reconcile_tables(recorded, rows(users=(ADMIN1,), roles=((1, "admin"),))).proved
    }
    other = entries(bootstrap_entry(password_sha256="0" * 64))
    result = reconcile_tables(other, rows(users=(ADMIN1,), roles=((1, "admin"),)))
    assert [(d.table, d.row, d.column) for d in result.differences] == [
        ("users", "id 1 (admin1)", "password_hash")
    ]
