"""Verifying a log: every kind of tampering is caught (or is, by design, undetectable and
reported as such), and the first bad entry is named."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from candor.audit import (
    ChainError,
    Checkpoint,
    canonical_entry,
    leaf_hash,
    merkle_root,
    open_checkpoint,
    parse_entry,
    verify_chain,
    verify_entries,
)

from .support import T0, build_log, fixed_key, make_entry, relink, resign, standard_log

KEY = fixed_key()
VKEY = KEY.verifier_key()


def log() -> tuple[list[bytes], list[str]]:
    entries, notes = standard_log()
    return list(entries), list(notes)


def edited(raw: bytes, actor: str = "mallory") -> bytes:
    """The same entry, still canonical, with another actor: what a careful forger writes."""
    return canonical_entry({**parse_entry(raw), "actor": actor})


def note_at(notes: list[str], size: int) -> str:
    return next(note for note in notes if open_checkpoint(note, VKEY).size == size)


def test_an_untouched_log_verifies_and_lists_its_chain_only_tail() -> None:
    entries, notes = log()
    report = verify_entries(entries, notes, VKEY)
    assert report.ok, report.problem
    assert report.entries == 330
    assert report.first_bad_seq is None and report.problem is None
    assert report.checkpoints == 3
    assert report.last_checkpoint_size == 300
    assert report.unchecked_tail == tuple(range(301, 331))
    assert "OK" in report.summary() and "301..330" in report.summary()


def test_notes_may_come_in_any_order_and_held_notes_count() -> None:
    entries, notes = log()
    report = verify_entries(entries, notes[::-1], VKEY, against=[notes[0], notes[1]])
    assert report.ok and report.held == 2


def test_empty_log() -> None:
    report = verify_entries([], [], VKEY)
    assert report.ok and report.entries == 0 and report.unchecked_tail == ()
    empty = KEY.sign(Checkpoint(origin=KEY.name, size=0, root=merkle_root([]), time=T0))
    assert verify_entries([], [empty], VKEY).ok


def test_a_log_without_checkpoints_is_all_chain_only() -> None:
    entries, _ = log()
    report = verify_entries(entries[:20], [], VKEY)
    assert report.ok and report.last_checkpoint_size == 0
    assert report.unchecked_tail == tuple(range(1, 21))


def test_one_changed_byte_names_that_entry() -> None:
    entries, notes = log()
    before = entries[49]
    entries[49] = before.replace(b"C-2026-00050", b"C-2026-00059")
    assert sum(a != b for a, b in zip(before, entries[49], strict=True)) == 1
    report = verify_entries(entries, notes, VKEY)
    assert not report.ok
    assert report.first_bad_seq == 50
    assert "entry 51 links to" in (report.problem or "")


def test_a_byte_that_breaks_the_json_names_that_entry() -> None:
    entries, notes = log()
    entries[49] = entries[49].replace(b'"seq":50', b'"seq":50 ')
    report = verify_entries(entries, notes, VKEY)
    assert report.first_bad_seq == 50 and "not canonical" in (report.problem or "")


def test_a_deleted_entry_is_named() -> None:
    entries, notes = log()
    del entries[49]
    report = verify_entries(entries, notes, VKEY)
    assert report.first_bad_seq == 50
    assert "position 50 has seq 51" in (report.problem or "")


def test_two_swapped_entries_are_caught_at_the_first() -> None:
    entries, notes = log()
    entries[49], entries[59] = entries[59], entries[49]
    assert verify_entries(entries, notes, VKEY).first_bad_seq == 50


def test_a_duplicated_entry_is_caught() -> None:
    entries, notes = log()
    entries.insert(120, entries[119])
    assert verify_entries(entries, notes, VKEY).first_bad_seq == 121


def test_a_changed_link_after_a_verified_checkpoint_names_the_link() -> None:
    entries, notes = log()
    fields = dict(parse_entry(entries[100]))
    fields["prev"] = "1" * 64
    entries[100] = canonical_entry(fields)
    report = verify_entries(entries, notes, VKEY)
    assert report.first_bad_seq == 101
    assert "the link in entry 101 was altered" in (report.problem or "")


def test_entry_one_must_link_to_zeros() -> None:
    entries, notes = log()
    entries[0] = canonical_entry({**parse_entry(entries[0]), "prev": "1" * 64})
    report = verify_entries(entries, notes, VKEY)
    assert report.first_bad_seq == 1 and "64 zeros" in (report.problem or "")


def test_the_last_entry_of_a_checkpoint_is_caught_by_its_root() -> None:
    entries, notes = log()
    entries = entries[:300]
    entries[299] = edited(entries[299])
    report = verify_entries(entries, notes, VKEY)
    assert not report.ok
    # Entries 201..300 hang together by the chain; the root says one of them changed.
    assert report.first_bad_seq == 201
    assert "checkpoint note 3 signed" in (report.problem or "")


def test_an_edited_and_relinked_history_fails_at_its_checkpoint() -> None:
    entries, notes = log()
    entries[149] = edited(entries[149])
    entries = relink(entries, 150)
    report = verify_entries(entries, notes, VKEY)
    assert report.first_bad_seq == 101
    assert "entries 101..200 are not what was signed" in (report.problem or "")


def test_a_wrong_root_signed_with_the_key_is_caught() -> None:
    entries, notes = log()
    forged = KEY.sign(Checkpoint(origin=KEY.name, size=100, root=leaf_hash(b"x"), time=T0))
    report = verify_entries(entries, [forged, *notes[1:]], VKEY)
    assert report.first_bad_seq == 1
    assert "checkpoint note 1 signed" in (report.problem or "")


def test_truncating_the_unchecked_tail_is_undetectable_without_a_later_checkpoint() -> None:
    entries, notes = log()
    report = verify_entries(entries[:320], notes, VKEY)
    # By design: nothing signed says entries 321..330 existed.
    assert report.ok
    assert report.unchecked_tail == tuple(range(301, 321))


def test_truncating_below_a_checkpoint_in_the_log_is_caught() -> None:
    entries, notes = log()
    report = verify_entries(entries[:250], notes, VKEY)
    assert report.first_bad_seq == 251
    assert "covers 300 entries but the log holds 250" in (report.problem or "")


def test_truncating_with_its_checkpoint_is_caught_only_against_a_held_checkpoint() -> None:
    entries, notes = log()
    shortened, kept = entries[:250], notes[:2]
    alone = verify_entries(shortened, kept, VKEY)
    assert alone.ok and alone.unchecked_tail == tuple(range(201, 251))
    held = verify_entries(shortened, kept, VKEY, against=[note_at(notes, 300)])
    assert not held.ok
    assert held.first_bad_seq == 251
    assert "held checkpoint 1 covers 300 entries" in (held.problem or "")


def test_a_checkpoint_signed_by_another_key_is_rejected() -> None:
    entries, notes = log()
    other = fixed_key(seed="an impostor")
    fake = other.sign(open_checkpoint(notes[1], VKEY))
    report = verify_entries(entries, [notes[0], fake, notes[2]], VKEY)
    assert not report.ok and report.first_bad_seq is None
    assert "checkpoint note 2 was rejected: note has no signature by" in (report.problem or "")


def test_a_forged_signature_is_rejected() -> None:
    entries, notes = log()
    head, blob = notes[2].rsplit(" ", 1)
    flipped = blob[:10] + ("A" if blob[10] != "A" else "B") + blob[11:]
    report = verify_entries(entries, [*notes[:2], f"{head} {flipped}"], VKEY)
    assert not report.ok and "does not verify" in (report.problem or "")


def test_a_held_checkpoint_by_another_key_is_rejected() -> None:
    entries, notes = log()
    other = fixed_key(seed="an impostor")
    report = verify_entries(
        entries, notes, VKEY, against=[other.sign(open_checkpoint(notes[0], VKEY))]
    )
    assert not report.ok and "held checkpoint 1 was rejected" in (report.problem or "")


def test_a_garbled_verifier_key_is_reported() -> None:
    entries, notes = log()
    report = verify_entries(entries, notes, VKEY[:-2])
    assert not report.ok and "verifier key was rejected" in (report.problem or "")


def test_a_rewrite_resigned_with_the_same_key_is_caught_only_against_held_checkpoints() -> None:
    entries, notes = log()
    yesterday = [note_at(notes, 100), note_at(notes, 200)]
    entries[49] = edited(entries[49])
    rewritten = relink(entries, 50)
    resigned = resign(rewritten, 100, KEY)
    # Whoever holds the key and the database can make a log that verifies on its own.
    assert verify_entries(rewritten, resigned, VKEY).ok
    report = verify_entries(rewritten, resigned, VKEY, against=yesterday)
    assert not report.ok
    assert report.first_bad_seq == 1
    assert "held checkpoint 1 signed" in (report.problem or "")
    assert "entries 1..100 are not what was signed" in (report.problem or "")


def test_a_rewrite_after_the_last_held_checkpoint_is_not_detectable() -> None:
    entries, notes = log()
    held = [note_at(notes, 200)]
    entries[249] = edited(entries[249])
    rewritten = relink(entries, 250)
    # The trust model's limit: only checkpoints that left the system bind the key holder.
    report = verify_entries(rewritten, resign(rewritten, 100, KEY), VKEY, against=held)
    assert report.ok and report.held == 1


def test_verify_chain_returns_leaf_hashes_or_names_the_first_bad_entry() -> None:
    entries, _ = log()
    assert verify_chain(entries[:5]) == [leaf_hash(raw) for raw in entries[:5]]
    broken = entries[:10]
    del broken[3]
    with pytest.raises(ChainError, match="position 4 has seq 5") as caught:
        verify_chain(broken)
    assert caught.value.seq == 4


def test_every_entry_size_stays_realistic() -> None:
    entries, _ = log()
    assert all(250 <= len(raw) <= 450 for raw in entries)


# Random tampering. What the verifier must catch, and what it cannot by design:
# - any change to an entry a checkpoint covers (log or held) is caught, and the first bad
#   entry named lies between the last checkpoint before the change and the change itself;
# - a change in the chain-only tail is caught wherever the chain breaks: any changed,
#   removed, swapped or duplicated entry that has a successor;
# - not detectable: dropping entries from the end of the chain-only tail (truncation
#   above every checkpoint), rewriting the very last entry, and rewriting tail entries
#   and re-linking the chain after them; the report then lists those entries as
#   chain-only. Checkpoints made often, and held outside, keep that window short.
OPS = ("flip_bit", "edit", "edit_relinked", "delete", "swap", "duplicate", "truncate", "drop_end")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    op=st.sampled_from(OPS),
    data=st.data(),
    held_sizes=st.sets(st.sampled_from([100, 200, 300])),
)
def test_random_tampering_is_detected_where_detectable(
    op: str, data: st.DataObject, held_sizes: set[int]
) -> None:
    original, notes = log()
    count = len(original)
    entries = list(original)
    kept_notes = list(notes)
    position = data.draw(st.integers(0, count - 1), label="position")
    if op == "flip_bit":
        raw = bytearray(entries[position])
        at = data.draw(st.integers(0, len(raw) * 8 - 1), label="bit")
        raw[at // 8] ^= 1 << (at % 8)
        entries[position] = bytes(raw)
    elif op == "edit":
        entries[position] = edited(entries[position])
    elif op == "edit_relinked":
        entries[position] = edited(entries[position])
        entries = relink(entries, position + 1)
    elif op == "delete":
        del entries[position]
    elif op == "swap":
        other = data.draw(st.integers(0, count - 1).filter(lambda i: i != position), label="other")
        entries[position], entries[other] = entries[other], entries[position]
    elif op == "duplicate":
        entries.insert(position + 1, entries[position])
    elif op == "truncate":
        entries = entries[:position]
    else:
        # Truncate and also drop the checkpoints that would give it away.
        entries = entries[:position]
        kept_notes = [n for n in notes if open_checkpoint(n, VKEY).size <= position]
    held = [note_at(notes, size) for size in sorted(held_sizes)]

    report = verify_entries(entries, kept_notes, VKEY, against=held)

    sizes = sorted({open_checkpoint(n, VKEY).size for n in [*kept_notes, *held]})
    assert report.unchecked_tail == tuple(range(report.last_checkpoint_size + 1, len(entries) + 1))
    if entries == original:
        assert report.ok
        return
    is_prefix = original[: len(entries)] == entries
    if is_prefix:
        cut = len(entries)
        if sizes and sizes[-1] > cut:
            assert not report.ok and report.first_bad_seq == cut + 1
        else:
            assert report.ok, report.problem
            assert report.unchecked_tail == tuple(range((sizes[-1] if sizes else 0) + 1, cut + 1))
        return
    first_change = next(
        (i for i, (a, b) in enumerate(zip(entries, original, strict=False)) if a != b),
        len(original),  # an entry appended after the last
    )
    floor = (
        sizes[bisect.bisect_right(sizes, first_change) - 1]
        if sizes and sizes[0] <= first_change
        else 0
    )
    covered = bool(sizes) and first_change < sizes[-1]
    chain_breaks = first_change < len(entries) - 1 and op != "edit_relinked"
    if covered or chain_breaks:
        assert not report.ok, f"{op} at {first_change} went unnoticed"
    if not report.ok:
        assert report.first_bad_seq is not None
        assert floor + 1 <= report.first_bad_seq <= first_change + 1, report.problem
    else:
        # Only chain-only entries changed, and the chain still holds.
        assert first_change + 1 in report.unchecked_tail


def test_a_log_built_entry_by_entry_matches_its_checkpoints() -> None:
    entries, notes = build_log(57, 10, KEY)
    report = verify_entries(entries, notes, VKEY)
    assert report.ok and report.last_checkpoint_size == 50 and report.checkpoints == 5
    following = make_entry(58, leaf_hash(entries[-1]).hex())
    assert verify_entries([*entries, following], notes, VKEY).unchecked_tail == tuple(range(51, 59))
