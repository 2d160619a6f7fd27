"""Reports as audited reads: who made which report, over which period, as of which checkpoint.

The reports part computes and never writes; this module checks the permission
(`reports.read`), hands the computation what it needs (the workspace and the log's
verifier key), and records the outcome in the audit log: `report.generated` with the
kind, period and checkpoint, or `report.refused` with the reason when the log does not
verify or the store and the log disagree. A refused report is itself an event an
auditor must see. Interfaces call the reports part through `generate_report`, so this
module depends on no report type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from candor.store import Workspace
from candor.workflow.accounts import Actor
from candor.workflow.audit_trail import log_keys, record
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.permissions import require_permission

REPORT_KINDS = ("usage", "transparency")
# A refusal's reason goes into the log; a pathological message is cut to this length.
_PROBLEM_CHARS = 1000


class ReportRefusedError(WorkflowError):
    """The report was refused (and the refusal recorded); str() says why."""


@dataclass(frozen=True)
class ReportSource:
    """What a report computation reads: the workspace and the key its checkpoints verify with."""

    workspace: Workspace
    verifier_key: str


class Checkpointed(Protocol):
    """A computed report: it says which signed checkpoint it counts up to."""

    @property
    def checkpoint_size(self) -> int:
        """The tree size of that checkpoint."""
        ...


ReportT = TypeVar("ReportT", bound=Checkpointed)


def generate_report(
    workflow: Workflow,
    actor: Actor,
    kind: str,
    period: Mapping[str, str | int],
    compute: Callable[[ReportSource], ReportT],
    *,
    refusals: tuple[type[Exception], ...],
) -> ReportT:
    """Check `reports.read`, run `compute`, and record that the report was made or refused.

    kind: "usage" or "transparency". period: the period and filters, as text or whole
        numbers (the log holds no floats). refusals: the exception types with which
        `compute` refuses a report; they are recorded and raised as ReportRefusedError.
        Anything else propagates unrecorded, as a bug would.
    """
    if kind not in REPORT_KINDS:
        raise WorkflowError(f"unknown report kind {kind!r}; one of {', '.join(REPORT_KINDS)}")
    require_permission(workflow, actor, "reports.read")
    workspace = workflow.workspace
    source = ReportSource(workspace, str(log_keys(workspace)))
    try:
        report = compute(source)
    except refusals as error:
        with workspace.session() as session, session.begin():
            record(
                session,
                workflow,
                actor.username,
                "report.refused",
                {},
                {"kind": kind, "period": dict(period), "problem": str(error)[:_PROBLEM_CHARS]},
            )
        raise ReportRefusedError(str(error)) from error
    with workspace.session() as session, session.begin():
        record(
            session,
            workflow,
            actor.username,
            "report.generated",
            {},
            {"kind": kind, "period": dict(period), "checkpoint": report.checkpoint_size},
        )
    return report
