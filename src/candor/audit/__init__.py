"""The tamper-evident audit log: canonical entries, a Merkle tree, signed checkpoints.

Pure: bytes in, hashes, proofs and verdicts out. Storing entries belongs to the store
and workflow. The wire format is in docs/audit-format.md. Only `build_entry` and
`canonical_entry` need `rfc8785`; everything a verifier uses needs the standard library
and `cryptography` alone (see candor.audit.verifier).
"""

from candor.audit.canonical import (
    ZERO_PREV,
    Entry,
    JsonValue,
    canonical_json,
    format_time,
    parse_entry,
    parse_time,
)
from candor.audit.entries import build_entry, canonical_entry
from candor.audit.errors import (
    AuditError,
    ChainError,
    EntryError,
    KeyFileError,
    ProofError,
    SignatureError,
    WitnessError,
)
from candor.audit.export import write_export
from candor.audit.keyring import KeyRing, KeySpan, open_with
from candor.audit.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    shared_subtrees,
    verify_consistency,
    verify_inclusion,
)
from candor.audit.notes import (
    Checkpoint,
    SigningKey,
    VerifierKey,
    checkpoint_text,
    cosign,
    key_id,
    open_checkpoint,
    open_note,
)
from candor.audit.verification import (
    VerificationReport,
    verify_chain,
    verify_entries,
    verify_export,
)
from candor.audit.witness import Witness

__all__ = [
    "EMPTY_ROOT",
    "ZERO_PREV",
    "AuditError",
    "ChainError",
    "Checkpoint",
    "Entry",
    "EntryError",
    "JsonValue",
    "KeyFileError",
    "KeyRing",
    "KeySpan",
    "MerkleAccumulator",
    "ProofError",
    "SignatureError",
    "SigningKey",
    "VerificationReport",
    "VerifierKey",
    "Witness",
    "WitnessError",
    "build_entry",
    "canonical_entry",
    "canonical_json",
    "checkpoint_text",
    "consistency_proof",
    "cosign",
    "format_time",
    "inclusion_proof",
    "key_id",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "open_with",
    "parse_entry",
    "parse_time",
    "shared_subtrees",
    "verify_chain",
    "verify_consistency",
    "verify_entries",
    "verify_export",
    "verify_inclusion",
    "write_export",
]
