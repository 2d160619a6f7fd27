"""What every report stands on: a verified log, a signed checkpoint, a reconciled store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from candor.audit import open_checkpoint, verify_entries
from candor.reports.errors import LogVerificationError, NoCheckpointError
from candor.reports.ledger import Ledger, replay
from candor.reports.reconcile import reconcile
from candor.reports.snapshot import StoreSnapshot, read_snapshot
from candor.store import Workspace


@dataclass(frozen=True)
class AsOf:
    """The signed checkpoint a report counts up to."""

    checkpoint_size: int
    checkpoint_time: datetime
    root_hash: str
    log_entries: int

    @property
    def unsigned_entries(self) -> int:
        """Entries after the checkpoint: reconciled with the store, but not counted."""
        return self.log_entries - self.checkpoint_size

    def sentence(self) -> str:
        """One sentence saying what the figures are counted from."""
        stamp = self.checkpoint_time.strftime("%Y-%m-%d %H:%M:%S UTC")
        text = (
            f"Counted from audit log entries 1 to {self.checkpoint_size:,}, the latest signed "
            f"checkpoint ({stamp}, root {self.root_hash[:16]}…)"
        )
        if self.unsigned_entries:
            later = self.unsigned_entries
            text += (
                f"; {later:,} later {'entry' if later == 1 else 'entries'}, not yet covered by "
                "a signed checkpoint, "
                f"{'is' if later == 1 else 'are'} not counted"
            )
        return text + "."


@dataclass(frozen=True)
class ReportBasis:
    """The replayed log and the store snapshot it was reconciled with."""

    snapshot: StoreSnapshot
    ledger: Ledger
    as_of: AsOf


def establish_basis(workspace: Workspace, verifier_key: str) -> ReportBasis:
    """Read, verify, replay and reconcile; raise a ReportError subclass if any step fails.

    The whole log is verified (chain and every signed checkpoint), the store is
    reconciled with the whole log, and figures are then counted up to the latest
    checkpoint only: a report states history that has been signed.
    """
    snapshot = read_snapshot(workspace)
    if not snapshot.notes:
        raise NoCheckpointError(
            "the audit log has no signed checkpoint yet; make one with "
            "`candor audit checkpoint` (or wait for the automatic one)"
        )
    verification = verify_entries(snapshot.entries, snapshot.notes, verifier_key)
    if not verification.ok:
        raise LogVerificationError(
            verification.problem or "verification failed", verification.first_bad_seq
        )
    # Notes are read in tree-size order, and verification has just opened every one.
    latest = open_checkpoint(snapshot.notes[-1], verifier_key)
    ledger = replay(snapshot.entries)
    reconcile(ledger, snapshot)
    as_of = AsOf(
        checkpoint_size=latest.size,
        checkpoint_time=latest.time,
        root_hash=latest.root.hex(),
        log_entries=len(snapshot.entries),
    )
    return ReportBasis(snapshot=snapshot, ledger=ledger, as_of=as_of)
