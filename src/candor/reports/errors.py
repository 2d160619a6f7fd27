"""Why a report refuses: the log does not verify, or the store and the log disagree."""

from __future__ import annotations


class ReportError(Exception):
    """A report could not be computed honestly; str() says why in one sentence."""


class NoCheckpointError(ReportError):
    """The audit log has no signed checkpoint yet, so there is nothing to report as of."""


class LogVerificationError(ReportError):
    """The audit log fails verification (chain, canonical form or signed checkpoints)."""

    def __init__(self, problem: str, first_bad_seq: int | None) -> None:
        self.problem = problem
        self.first_bad_seq = first_bad_seq
        super().__init__(f"the audit log does not verify, so no report is made: {problem}")


class ReconciliationError(ReportError):
    """The store holds something other than what the audit log says happened.

    `subject` names the record (e.g. "search 17", "gallery image 4"), `field` what
    differs, `expected` what the log implies and `found` what the store holds.
    """

    def __init__(self, subject: str, field: str, expected: object, found: object) -> None:
        self.subject = subject
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(
            f"the store and the audit log disagree on {subject}, {field}: the log says "
            f"{expected!r}, the store holds {found!r}; no report is made until this is explained"
        )
