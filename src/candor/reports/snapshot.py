"""One consistent read of everything a report needs: the log, its checkpoints, the store.

All of it is read in a single database transaction (candor.store.reporting's
read_report_rows), so the log and the rows it is reconciled with come from the same
moment (SQLite in WAL mode gives a read transaction a fixed snapshot; PostgreSQL's
readers see one snapshot). Rows come as plain tuples: a report over tens of thousands of
searches must not build an ORM object for each.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from candor.store import ReportCard, Workspace
from candor.store.face_models import (
    BUILTIN_MODEL_NAME,
    active_model_activation,
    latest_report_card_of_model,
)
from candor.store.reporting import ReportRows, read_report_rows


@dataclass(frozen=True)
class StoredSearch:
    """A search_requests row, reduced to what the log also records."""

    search_id: int
    kind: str
    requester: str
    case_number: str
    offence_category: str
    purpose: str
    requesting_agency: str
    requesting_unit: str
    status: str
    outcome: str | None
    reasons: tuple[str, ...]
    approval: str | None
    probe_purged: bool


@dataclass(frozen=True)
class ModelInUse:
    """The workspace's face model now: its newest activation, or the built-in model."""

    name: str
    model_key: str | None  # None: the built-in model, never switched from
    since: datetime | None  # None: since the workspace began


@dataclass(frozen=True)
class StoredReportCard:
    """The latest accuracy report card of the model in use recorded in the store."""

    created_at: datetime
    dataset: str
    dataset_sha256: str
    model_key: str
    settings: dict[str, object]
    result: dict[str, object]
    dataset_limits: str


@dataclass
class StoreSnapshot:
    """The log, its checkpoints and the store's rows, as of one read transaction."""

    purpose: str
    timezone: str
    entries: list[bytes]
    notes: list[str]
    units: dict[str, str]
    searches: dict[int, StoredSearch]
    candidates: dict[int, int]
    verdicts: dict[int, set[tuple[int, str, str]]]
    releases: dict[int, set[int]]
    images: dict[int, str]
    home_agencies: dict[str, str]
    report_card: StoredReportCard | None = None
    model_in_use: ModelInUse | None = None
    # candidate id -> what its requester last recorded came of the released lead
    lead_outcomes: dict[int, str] = field(default_factory=dict)
    # policy sha256 -> days a candidate list may wait for review (review_within_days)
    review_within_days: dict[str, int] = field(default_factory=dict)
    # policy sha256 -> (review.reviewers_to_release, whether it names who settles a
    # disagreement): what `candor.store.review_state.list_under_review` needs
    review_rules: dict[str, tuple[int, bool]] = field(default_factory=dict)


def read_snapshot(workspace: Workspace) -> StoreSnapshot:
    """Read the log, checkpoints and governance rows of `workspace` in one transaction."""
    # Reads only: an autobegun session, one snapshot, no write lock (begin() takes it).
    with workspace.session() as session:
        rows = read_report_rows(session)
        in_use = _model_in_use(session)
        return StoreSnapshot(
            purpose=workspace.purpose,
            timezone=workspace.timezone,
            entries=rows.entries,
            notes=rows.notes,
            units=rows.units,
            searches=_searches(rows),
            candidates=rows.candidate_counts,
            verdicts=_verdicts(rows),
            releases=_releases(rows),
            images=rows.image_sources,
            home_agencies=_home_agencies(rows),
            # The model in use's own card: another model's figures would misstate it.
            report_card=_report_card(latest_report_card_of_model(session, in_use.model_key)),
            model_in_use=in_use,
            lead_outcomes={candidate: outcome for candidate, outcome in rows.lead_outcomes},
            review_within_days=_review_within_days(rows),
            review_rules=_review_rules(rows),
        )


def _searches(rows: ReportRows) -> dict[int, StoredSearch]:
    usernames, approvals = rows.usernames, rows.approvals
    searches = {}
    for row in rows.searches:
        search_id, kind, requester_id, case, offence, purpose, agency, unit = row[:8]
        status, decision, purged_at = row[8:]
        reasons = decision.get("reasons") if isinstance(decision, dict) else None
        outcome = decision.get("outcome") if isinstance(decision, dict) else None
        searches[search_id] = StoredSearch(
            search_id=search_id,
            kind=kind,
            requester=usernames.get(requester_id, f"user id {requester_id}"),
            case_number=case,
            offence_category=offence,
            purpose=purpose,
            requesting_agency=agency,
            requesting_unit=unit,
            status=status,
            outcome=outcome if isinstance(outcome, str) else None,
            reasons=tuple(
                str(reason.get("code")) for reason in reasons or [] if isinstance(reason, dict)
            ),
            approval=approvals.get(search_id),
            probe_purged=purged_at is not None,
        )
    return searches


def _verdicts(rows: ReportRows) -> dict[int, set[tuple[int, str, str]]]:
    usernames = rows.usernames
    verdicts: dict[int, set[tuple[int, str, str]]] = defaultdict(set)
    for search_id, candidate_id, examiner_id, verdict in rows.verdicts:
        examiner = usernames.get(examiner_id, f"user id {examiner_id}")
        verdicts[search_id].add((candidate_id, examiner, verdict))
    return dict(verdicts)


def _releases(rows: ReportRows) -> dict[int, set[int]]:
    releases: dict[int, set[int]] = defaultdict(set)
    for search_id, candidate_id in rows.releases:
        releases[search_id].add(candidate_id)
    return dict(releases)


def _home_agencies(rows: ReportRows) -> dict[str, str]:
    """policy sha256 -> its home agency, read from the policy text as it was added.

    Reports may not use the policy part, so the one value needed is read with tomllib;
    the text was validated by the policy parser when the policy was added.
    """
    import tomllib

    agencies = {}
    for sha256, source in rows.policy_sources:
        try:
            agency = tomllib.loads(source)["agency"]["home_agency"]
        except (tomllib.TOMLDecodeError, KeyError, TypeError):
            continue
        if isinstance(agency, str):
            agencies[sha256] = agency
    return agencies


# The policy's default for review.review_within_days (candor.policy.parse).
REVIEW_WITHIN_DAYS = 7


def _review_within_days(rows: ReportRows) -> dict[str, int]:
    """policy sha256 -> its review.review_within_days, read like the home agency."""
    import tomllib

    days = {}
    for sha256, source in rows.policy_sources:
        try:
            value = tomllib.loads(source).get("review", {}).get("review_within_days")
        except (tomllib.TOMLDecodeError, AttributeError):
            continue
        days[sha256] = value if isinstance(value, int) else REVIEW_WITHIN_DAYS
    return days


def _review_rules(rows: ReportRows) -> dict[str, tuple[int, bool]]:
    """policy sha256 -> (reviewers_to_release, resolve_disagreement_by is set), read like
    review_within_days; a policy whose text does not say is left out (the caller's default)."""
    import tomllib

    rules = {}
    for sha256, source in rows.policy_sources:
        try:
            review = tomllib.loads(source).get("review", {})
            reviewers = review.get("reviewers_to_release")
            resolver = review.get("resolve_disagreement_by")
        except (tomllib.TOMLDecodeError, AttributeError):
            continue
        if isinstance(reviewers, int):
            rules[sha256] = (reviewers, isinstance(resolver, str))
    return rules


def _model_in_use(session: Session) -> ModelInUse:
    activation = active_model_activation(session)
    if activation is None:
        return ModelInUse(BUILTIN_MODEL_NAME, None, None)
    return ModelInUse(activation.model_name, activation.model_key, activation.activated_at)


def _report_card(card: ReportCard | None) -> StoredReportCard | None:
    if card is None:
        return None
    return StoredReportCard(
        created_at=card.created_at,
        dataset=card.dataset,
        dataset_sha256=card.dataset_sha256,
        model_key=card.model_key,
        settings=dict(card.settings),
        result=dict(card.result),
        dataset_limits=card.dataset_limits,
    )
