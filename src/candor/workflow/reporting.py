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

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from candor.store import Workspace
from candor.store.reporting import published_entries
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


# -- published reports ----------------------------------------------------------------------
#
# The transparency report is for the public, who have no login and no `reports.read`.
# Making it is an audited read, and an anonymous read would let anyone grow the log with
# every page view. So a report reader publishes it: the report is made (and recorded, as
# any report is) and its public document goes into the log itself as `report.published`,
# signed with the log at the next checkpoint. The public page serves the newest published
# document of a year and reads nothing else: no live figure, no entry per view.

PUBLISHED_KINDS = ("transparency",)


@dataclass(frozen=True)
class PublishedReport:
    """A report as it was published: the document, when, and the entry that holds it."""

    kind: str
    period: dict[str, object]
    document: dict[str, object]
    published_at: str  # the entry's time, RFC 3339 UTC
    seq: int


def publish_report(
    workflow: Workflow,
    actor: Actor,
    kind: str,
    period: Mapping[str, str | int],
    compute: Callable[[ReportSource], ReportT],
    document: Callable[[ReportT], Mapping[str, object]],
    *,
    refusals: tuple[type[Exception], ...],
) -> tuple[ReportT, int]:
    """Make the report (`generate_report`) and publish its `document`; returns it and the seq.

    document: the public form of the report (plain JSON values, no floats: it is logged).
    """
    if kind not in PUBLISHED_KINDS:
        raise WorkflowError(f"only {', '.join(PUBLISHED_KINDS)} reports are published")
    report = generate_report(workflow, actor, kind, period, compute, refusals=refusals)
    with workflow.workspace.session() as session, session.begin():
        seq = record(
            session,
            workflow,
            actor.username,
            "report.published",
            {},
            {
                "kind": kind,
                "period": dict(period),
                "checkpoint": report.checkpoint_size,
                "document": dict(document(report)),
            },
        )
    return report, seq


def published_report(
    workflow: Workflow, kind: str, period: Mapping[str, str | int] | None = None
) -> PublishedReport | None:
    """The newest report of `kind` published for `period` (None: for any), or None; a
    public read.

    Nothing is checked or recorded: the document was made by a report reader and is in
    the signed log already, and serving it again discloses nothing new.
    """
    wanted = None if period is None else dict(period)
    with workflow.workspace.session() as session:
        for seq, body in published_entries(session):
            entry = json.loads(body)
            details = entry.get("details", {})
            if details.get("kind") == kind and wanted in (None, details.get("period")):
                return PublishedReport(
                    kind=kind,
                    period=details["period"],
                    document=details["document"],
                    published_at=entry["time"],
                    seq=seq,
                )
    return None
