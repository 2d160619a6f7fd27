"""Key rings (the keys a log signed with, by size), cosigned notes, and witness files."""

from __future__ import annotations

import json

import pytest

from candor.audit import (
    KeyRing,
    MerkleAccumulator,
    ProofError,
    SignatureError,
    VerifierKey,
    Witness,
    WitnessError,
    cosign,
    leaf_hash,
    open_checkpoint,
    open_with,
)

from .support import fixed_key, standard_log

OLD = fixed_key()
NEW = fixed_key(seed="the next key")


def rotated_at(size: int) -> KeyRing:
    return KeyRing.single(OLD.verifier_key()).rotated(VerifierKey.parse(NEW.verifier_key()), size)


def test_a_ring_of_one_key_is_its_verifier_key_line() -> None:
    ring = KeyRing.single(OLD.verifier_key())
    assert str(ring) == OLD.verifier_key()
    assert KeyRing.parse(OLD.verifier_key() + "\n") == ring
    assert KeyRing.parse(f"{OLD.verifier_key()} 0..") == ring


def test_a_rotated_ring_round_trips_and_covers_by_size() -> None:
    ring = rotated_at(200)
    assert str(ring) == f"{OLD.verifier_key()} 0..200\n{NEW.verifier_key()} 200.."
    assert KeyRing.parse(str(ring)) == ring
    assert ring.keys_for(199) == [ring.spans[0].key]
    assert ring.keys_for(200) == [ring.spans[0].key, ring.spans[1].key]
    assert ring.keys_for(10**6) == [ring.spans[1].key]
    assert ring.describe().endswith("(and 1 earlier)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{OLD.verifier_key()} 5..", "must cover size 0"),
        (f"{OLD.verifier_key()} 0..10\n{NEW.verifier_key()} 11..", "must end where"),
        (f"{OLD.verifier_key()} 0..10", "open-ended"),
        (f"{OLD.verifier_key()} 0..10\n{OLD.verifier_key()} 10..", "appears twice"),
        (f"{OLD.verifier_key()} ten..", "sizes must be"),
        (f"{OLD.verifier_key()} 0.. extra", "must be '<verifier key>"),
        (
            f"{OLD.verifier_key()} 0..3\n{fixed_key('other.name', 'x').verifier_key()} 3..",
            "every key of one log",
        ),
    ],
)
def test_bad_key_rings_are_refused(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        KeyRing.parse(text)


def test_notes_open_only_with_the_key_for_their_size() -> None:
    _, notes = standard_log()
    ring = rotated_at(200)
    checkpoint = open_checkpoint(notes[2], OLD.verifier_key())  # size 300
    with pytest.raises(SignatureError, match="no valid signature by the key"):
        open_with(notes[2], ring)
    assert open_with(NEW.sign(checkpoint), ring) == checkpoint
    assert open_with(notes[0], ring).size == 100


def test_a_cosigned_note_opens_with_either_key() -> None:
    _, notes = standard_log()
    both = cosign(notes[1], NEW)
    assert open_checkpoint(both, OLD.verifier_key()) == open_checkpoint(both, NEW.verifier_key())
    with pytest.raises(SignatureError, match="already carries"):
        cosign(both, OLD)


def test_an_accumulator_resumes_from_its_subtrees() -> None:
    leaves = [leaf_hash(bytes([n])) for n in range(13)]
    whole = MerkleAccumulator(leaves)
    part = MerkleAccumulator(leaves[:6])
    resumed = MerkleAccumulator.resume(part.size, part.subtrees)
    for leaf in leaves[6:]:
        resumed.append(leaf)
    assert resumed.root() == whole.root() and resumed.size == 13
    with pytest.raises(ProofError, match="perfect subtrees"):
        MerkleAccumulator.resume(6, part.subtrees[:1])


def _witness() -> Witness:
    entries, notes = standard_log()
    leaves = [leaf_hash(entry) for entry in entries[:300]]
    return Witness.signed(
        KeyRing.single(OLD.verifier_key()),
        notes[-1],
        MerkleAccumulator(leaves[:-1]),
        leaves[-1],
        3,
        "made with the log",
    )


def test_a_witness_round_trips_and_checks_itself() -> None:
    witness = _witness()
    assert witness.checkpoint is not None and witness.size == 300
    assert witness.tree().root() == witness.checkpoint.root
    assert Witness.from_text(witness.to_text(), "w") == witness
    content = json.loads(witness.to_text())
    content["last_leaf"] = "00" * 32
    with pytest.raises(WitnessError, match="tree edge gives the root"):
        Witness.from_text(json.dumps(content), "w")
    content = json.loads(witness.to_text())
    content["keys"] = [fixed_key(seed="stranger").verifier_key() + " 0.."]
    with pytest.raises(WitnessError, match="checkpoint was rejected"):
        Witness.from_text(json.dumps(content), "w")
    with pytest.raises(WitnessError, match="not a Candor audit witness"):
        Witness.from_text("{}", "w")
    with pytest.raises(WitnessError, match="not JSON"):
        Witness.from_text("{", "w")
