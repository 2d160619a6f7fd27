"""ORM models of accountable use: users, roles, sessions, admin confirmations, policies,
search requests with their candidates, approvals, verdicts and releases, calibrations, and
the audit log's entries and checkpoints. Schema revision 0002_governance.

Tables (every timestamp a timezone-aware UTC `UTCDateTime`):

- users: id, username (unique, lower-case [a-z0-9._-]{2,64}), display_name, unit,
  password_hash (argon2id encoded string), certificate_ref, certificate_expires (date),
  disabled, created_at, created_by (a username, or "bootstrap").
- user_roles: (user_id, role) primary key; role in ROLES.
- auth_sessions: id, token_sha256 (unique hex; the token itself is never stored), user_id,
  created_at, expires_at, revoked_at.
- admin_changes: id, kind (ADMIN_CHANGE_KINDS), payload (JSON), requested_by, requested_at,
  state (pending|confirmed|rejected), decided_by, decided_at, reason. The database itself
  refuses a change confirmed by the admin who requested it.
- policies: id, sha256 (unique), name, version, source (the TOML text), added_at, added_by,
  activated_at, confirmed_by. The active policy is the row with the latest activated_at.
- search_requests: one search or verify request, its decision, its probe's hashes and
  (until purged) its template; see the column comments below.
- candidates: id, search_id, rank (unique per search), score, subject_id, image_id,
  template_id, above_threshold. The three gallery ids are plain integers without foreign
  keys: expungement deletes gallery rows, and the search record keeps internal ids only.
  No id is ever given twice (AUTOINCREMENT, revision 0006), so a gallery row that is
  gone reads as expunged, never as someone enrolled later.
- approvals: id, search_id (unique), supervisor_id, decision (approved|rejected), reason,
  decided_at.
- verdicts: id, candidate_id, examiner_id, verdict (VERDICTS), rationale, created_at;
  unique (candidate_id, examiner_id).
- releases: id, candidate_id (unique), released_by, reason, released_at, label.
- calibrations: id, model_key, dataset, dataset_sha256, impostor_pairs, templates, points
  (JSON [false match rate, cosine threshold] pairs, rate falling), created_at, created_by,
  active.
- audit_entries: seq (set by the caller, from 1), body (the canonical entry bytes),
  leaf_hash (hex), created_at; action, actor, search_id, case_number copied from the body
  for the audit browser's filters (revision 0010; null where the body has none).
- audit_checkpoints: id, tree_size (unique), root_hash (hex), note (the signed note text),
  created_at.

Rows of a search (candidates, approval, verdicts, release) go with it when retention
deletes the search record (ON DELETE CASCADE); users are never deleted, only disabled, so
references to them have no cascade.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from candor.store.models import (
    NEVER_REUSED_IDS,
    Base,
    UTCDateTime,
    _hex64,
    _non_blank,
    _sql_list,
)

if TYPE_CHECKING:
    from candor.store.directory import DirectoryAccount

ROLES = ("analyst", "examiner", "supervisor", "auditor", "admin")
BOOTSTRAP_CREATOR = "bootstrap"
ADMIN_CHANGE_KINDS = (
    "create_user",
    "grant_role",
    "revoke_role",
    "enable_user",
    "change_policy",
    "expunge_subject",
)
CHANGE_STATES = ("pending", "confirmed", "rejected")
SEARCH_KINDS = ("search", "verify")
SEARCH_STATUSES = ("denied", "pending_approval", "approved", "rejected", "completed", "failed")
APPROVAL_DECISIONS = ("approved", "rejected")
VERDICTS = ("possible_match", "not_a_match", "inconclusive")
RELEASE_LABEL = "investigative lead only"
# Mirrors candor.policy.release.LEAD_OUTCOMES (a test keeps them equal).
LEAD_OUTCOMES = ("pending", "confirmed_by_other_evidence", "excluded", "no_action")
USERNAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789._-"


def _username_form(column: str) -> str:
    # The same ltrim trick as _hex64: portable between SQLite and PostgreSQL.
    return (
        f"length({column}) >= 2 AND length({column}) <= 64 "
        f"AND ltrim({column}, '{USERNAME_CHARACTERS}') = ''"
    )


class User(Base):
    """A person who may use Candor; never deleted (the audit log names them), only disabled."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_username_form("username"), name="username_form"),
        CheckConstraint(_non_blank("display_name"), name="display_name_not_blank"),
        CheckConstraint(_non_blank("unit"), name="unit_not_blank"),
        CheckConstraint("password_hash LIKE '$argon2id$%'", name="password_hash_argon2id"),
        CheckConstraint(_non_blank("certificate_ref"), name="certificate_ref_not_blank"),
        CheckConstraint(_non_blank("created_by"), name="created_by_not_blank"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    certificate_ref: Mapped[str] = mapped_column(String(200))
    certificate_expires: Mapped[date] = mapped_column(Date)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    # Set when an admin resets the password: the next login must choose a new one.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    # Loaded with the user (a join, not a query more): every request asks whether its
    # user logs in through the directory (candor.workflow.accounts.session_view).
    directory_link: Mapped[DirectoryAccount | None] = relationship(
        "DirectoryAccount", lazy="joined", viewonly=True
    )
    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="UserRole.role",
    )

    @property
    def roles(self) -> frozenset[str]:
        """The roles this user holds."""
        return frozenset(row.role for row in self.role_rows)


class UserRole(Base):
    """One role held by one user."""

    __tablename__ = "user_roles"
    __table_args__ = (CheckConstraint(f"role IN ({_sql_list(ROLES)})", name="role_known"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class AuthSession(Base):
    """A login; the bearer token's sha256 only, so a copy of the database logs nobody in."""

    __tablename__ = "auth_sessions"
    __table_args__ = (
        CheckConstraint(_hex64("token_sha256"), name="token_sha256_hex"),
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When a request last used the session (for idle logouts on every node); None until
    # its first use after login.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    user: Mapped[User] = relationship()


class AdminChange(Base):
    """A change to users, roles or policy that waits for a second admin's confirmation."""

    __tablename__ = "admin_changes"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_sql_list(ADMIN_CHANGE_KINDS)})", name="kind_known"),
        CheckConstraint(f"state IN ({_sql_list(CHANGE_STATES)})", name="state_known"),
        CheckConstraint(
            "(state = 'pending' AND decided_by IS NULL AND decided_at IS NULL) OR "
            "(state <> 'pending' AND decided_by IS NOT NULL AND decided_at IS NOT NULL)",
            name="decision_complete",
        ),
        # The two-admin rule, held by the database as well as by the workflow.
        CheckConstraint(
            "state <> 'confirmed' OR decided_by <> requested_by", name="second_admin_confirms"
        ),
        CheckConstraint(
            f"state <> 'rejected' OR (reason IS NOT NULL AND {_non_blank('reason')})",
            name="rejection_has_reason",
        ),
        Index("ix_admin_changes_state_id", "state", "id"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    requester: Mapped[User] = relationship(foreign_keys=[requested_by])
    decider: Mapped[User | None] = relationship(foreign_keys=[decided_by])


class PolicyRecord(Base):
    """A policy file's text as added; active from `activated_at` until a later activation."""

    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint(_hex64("sha256"), name="sha256_hex"),
        CheckConstraint(_non_blank("name"), name="name_not_blank"),
        CheckConstraint(_non_blank("version"), name="version_not_blank"),
        CheckConstraint(
            "(activated_at IS NULL) = (confirmed_by IS NULL)", name="activation_confirmed"
        ),
        Index("ix_policies_activated_at", "activated_at"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    added_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class SearchRequest(Base):
    """One search or verify request: who, for which case and purpose, decided how, run when."""

    __tablename__ = "search_requests"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_sql_list(SEARCH_KINDS)})", name="kind_known"),
        CheckConstraint(f"status IN ({_sql_list(SEARCH_STATUSES)})", name="status_known"),
        CheckConstraint(_non_blank("case_number"), name="case_number_not_blank"),
        CheckConstraint(_non_blank("offence_category"), name="offence_category_not_blank"),
        CheckConstraint(_non_blank("purpose"), name="purpose_not_blank"),
        CheckConstraint(_non_blank("requesting_agency"), name="requesting_agency_not_blank"),
        CheckConstraint(_non_blank("requesting_unit"), name="requesting_unit_not_blank"),
        CheckConstraint(_non_blank("probe_kind"), name="probe_kind_not_blank"),
        CheckConstraint("requested_top > 0", name="requested_top_positive"),
        CheckConstraint(_hex64("policy_sha256"), name="policy_sha256_hex"),
        CheckConstraint(_hex64("probe_sha256"), name="probe_sha256_hex"),
        CheckConstraint(
            f"original_probe_sha256 IS NULL OR ({_hex64('original_probe_sha256')})",
            name="original_probe_sha256_hex",
        ),
        CheckConstraint(
            f"second_probe_sha256 IS NULL OR ({_hex64('second_probe_sha256')})",
            name="second_probe_sha256_hex",
        ),
        # An edited probe says how it was edited; an unedited one has no separate original.
        CheckConstraint(
            "probe_edited OR (original_probe_sha256 IS NULL AND edits IS NULL)",
            name="unedited_has_no_original",
        ),
        CheckConstraint(
            f"NOT probe_edited OR (edits IS NOT NULL AND {_non_blank('edits')})",
            name="edits_described",
        ),
        CheckConstraint(
            "(kind = 'verify') = (second_probe_sha256 IS NOT NULL)",
            name="second_probe_only_for_verify",
        ),
        CheckConstraint("face_index IS NULL OR face_index >= 0", name="face_index_not_negative"),
        CheckConstraint("status <> 'completed' OR ran_at IS NOT NULL", name="completed_has_run"),
        CheckConstraint(
            "probe_purged_at IS NULL OR probe_template IS NULL", name="purged_has_no_template"
        ),
        Index("ix_search_requests_requester_id_created_at", "requester_id", "created_at"),
        Index("ix_search_requests_probe_sha256", "probe_sha256"),
        # The repeat-search check reads one kind's requests inside the policy's window.
        Index("ix_search_requests_kind_created_at", "kind", "created_at"),
        # A retried POST with the same Idempotency-Key is the same request (revision 0010).
        Index(
            "ix_search_requests_requester_id_idempotency_key",
            "requester_id",
            "idempotency_key",
            unique=True,
        ),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    case_number: Mapped[str] = mapped_column(String(200))
    offence_category: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(100))
    requesting_agency: Mapped[str] = mapped_column(String(200))
    requesting_unit: Mapped[str] = mapped_column(String(200))
    authorisation_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    probe_kind: Mapped[str] = mapped_column(String(50))
    probe_edited: Mapped[bool] = mapped_column(Boolean)
    edits: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_top: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    policy_sha256: Mapped[str] = mapped_column(String(64))
    earlier_search_id: Mapped[int | None] = mapped_column(
        ForeignKey("search_requests.id"), nullable=True
    )
    # Of the probe as searched (after any edits).
    probe_sha256: Mapped[str] = mapped_column(String(64))
    original_probe_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    second_probe_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    face_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    probe_quality: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    probe_model_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Biometric: kept only to recognise repeat searches, purged with the probe itself.
    probe_template: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    # What `threshold` applies to: "cosine" or a recipe's normalised score (None: cosine,
    # from before recipes).
    threshold_score: Mapped[str | None] = mapped_column(String(100), nullable=True)
    threshold_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ran_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    probe_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    candidates: Mapped[list[Candidate]] = relationship(
        back_populates="search",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Candidate.rank",
    )
    approval: Mapped[Approval | None] = relationship(
        back_populates="search", cascade="all, delete-orphan", passive_deletes=True
    )


class Candidate(Base):
    """One ranked lead of a search; gallery ids only, so expungement leaves no dangling key."""

    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("search_id", "rank"),
        CheckConstraint("rank >= 1", name="rank_positive"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("search_requests.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    subject_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int] = mapped_column(Integer)
    template_id: Mapped[int] = mapped_column(Integer)
    above_threshold: Mapped[bool] = mapped_column(Boolean)
    # The score the threshold applied to when the search was normalised; `score` is
    # always the cosine, the figure shown first.
    normalised_score: Mapped[float | None] = mapped_column(Float, nullable=True)

    search: Mapped[SearchRequest] = relationship(back_populates="candidates")
    verdicts: Mapped[list[Verdict]] = relationship(
        back_populates="candidate",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Verdict.id",
    )
    release: Mapped[Release | None] = relationship(
        back_populates="candidate", cascade="all, delete-orphan", passive_deletes=True
    )


class Approval(Base):
    """A supervisor's decision on a search that the policy sent for approval."""

    __tablename__ = "approvals"
    __table_args__ = (
        CheckConstraint(f"decision IN ({_sql_list(APPROVAL_DECISIONS)})", name="decision_known"),
        CheckConstraint(_non_blank("reason"), name="reason_not_blank"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(
        ForeignKey("search_requests.id", ondelete="CASCADE"), unique=True
    )
    supervisor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())

    search: Mapped[SearchRequest] = relationship(back_populates="approval")


class Verdict(Base):
    """One examiner's review of one candidate, with the rationale."""

    __tablename__ = "verdicts"
    __table_args__ = (
        UniqueConstraint("candidate_id", "examiner_id"),
        CheckConstraint(f"verdict IN ({_sql_list(VERDICTS)})", name="verdict_known"),
        CheckConstraint(_non_blank("rationale"), name="rationale_not_blank"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    examiner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(20))
    rationale: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A verdict given under the policy's resolve_disagreement_by, after the blind verdicts
    # disagreed; it settles the disagreement.
    resolves: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    candidate: Mapped[Candidate] = relationship(back_populates="verdicts")


class Release(Base):
    """A candidate released as an investigative lead, by whom and why."""

    __tablename__ = "releases"
    __table_args__ = (
        CheckConstraint(_non_blank("reason"), name="reason_not_blank"),
        CheckConstraint(_non_blank("label"), name="label_not_blank"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), unique=True
    )
    released_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    released_at: Mapped[datetime] = mapped_column(UTCDateTime())
    label: Mapped[str] = mapped_column(String(200), default=RELEASE_LABEL)

    candidate: Mapped[Candidate] = relationship(back_populates="release")
    outcomes: Mapped[list[LeadOutcome]] = relationship(
        back_populates="release",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="LeadOutcome.id",
    )


class LeadOutcome(Base):
    """What came of a released lead, as its requester recorded it; the newest row stands,
    the earlier ones stay as its history."""

    __tablename__ = "lead_outcomes"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_sql_list(LEAD_OUTCOMES)})", name="outcome_known"),
        CheckConstraint(_non_blank("note"), name="note_not_blank"),
        Index("ix_lead_outcomes_release_id_id", "release_id", "id"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())

    release: Mapped[Release] = relationship(back_populates="outcomes")


class Calibration(Base):
    """Impostor score tail of one model on one dataset, from which thresholds are derived."""

    __tablename__ = "calibrations"
    __table_args__ = (
        CheckConstraint(_non_blank("model_key"), name="model_key_not_blank"),
        CheckConstraint(_non_blank("dataset"), name="dataset_not_blank"),
        CheckConstraint(_hex64("dataset_sha256"), name="dataset_sha256_hex"),
        CheckConstraint("impostor_pairs > 0", name="impostor_pairs_positive"),
        CheckConstraint(_non_blank("score"), name="score_not_blank"),
        Index("ix_calibrations_model_key_score_active", "model_key", "score", "active"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_key: Mapped[str] = mapped_column(String(200))
    # What the thresholds apply to: "cosine", or a recipe's normalised score.
    score: Mapped[str] = mapped_column(String(100), server_default="cosine")
    dataset: Mapped[str] = mapped_column(Text)
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    impostor_pairs: Mapped[int] = mapped_column(Integer)
    # [[per-comparison false match rate, score threshold], ...], rate falling.
    points: Mapped[list[list[float]]] = mapped_column(JSON)
    templates: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    """One audit log entry: its exact canonical bytes (what is hashed) and its leaf hash."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint(_hex64("leaf_hash"), name="leaf_hash_hex"),
        CheckConstraint("length(body) > 0", name="body_not_empty"),
        # The audit browser's filters (revision 0010), each newest first by seq.
        Index("ix_audit_entries_action_seq", "action", "seq"),
        Index("ix_audit_entries_actor_seq", "actor", "seq"),
        Index("ix_audit_entries_search_id_seq", "search_id", "seq"),
        Index("ix_audit_entries_case_number_seq", "case_number", "seq"),
        Index("ix_audit_entries_created_at", "created_at"),
    )

    # Set by the caller: the sequence number is part of the hashed entry, so the database
    # must not pick it.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Copies of the body's fields, written with it, so the log can be filtered in SQL
    # (revision 0010). Not hashed: the body is the entry; these only find it.
    action: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str | None] = mapped_column(Text, nullable=True)
    search_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    case_number: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditCheckpoint(Base):
    """A signed checkpoint of the audit log's Merkle tree (the signed note text)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (
        CheckConstraint("tree_size >= 0", name="tree_size_not_negative"),
        CheckConstraint(_hex64("root_hash"), name="root_hash_hex"),
        CheckConstraint(_non_blank("note"), name="note_not_blank"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(Integer, unique=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The tree's compact range at this size (revision 0012; NULL for older checkpoints):
    # the next checkpoint grows from it (candor.workflow.audit_trail).
    compact_range: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
