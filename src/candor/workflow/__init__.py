"""Workflow: the only part that combines the others and writes.

Every face comparison goes through `governed` (request, policy, approval, run, review,
release); enrolment, expungement and retention need the policy's permission; every
action writes its audit entry in its own transaction.
"""

from candor.policy import VERDICTS, Verdict, example_policy_path
from candor.policy.release import LEAD_OUTCOMES, LeadOutcome
from candor.store import (
    OPERATIONAL_SOURCES,
    SOURCE_TYPES,
    Provenance,
    SubjectDetail,
    SubjectSummary,
    WorkspaceBusyError,
)
from candor.store.database import POOL_TIMEOUT_SECONDS, server_threads
from candor.workflow.accounts import Actor, active_policy, authenticate
from candor.workflow.context import Workflow
from candor.workflow.enrolment import (
    EnrolmentOutcome,
    EnrolmentRequest,
    EnrolmentStatus,
    EnrolmentSummary,
    enrol_files,
    requests_from_folders,
)
from candor.workflow.errors import (
    FaceIndexError,
    MultipleFacesError,
    NotFoundError,
    ProbeRefusedError,
    RequestNotFoundError,
    SubjectNotFoundError,
    WorkflowError,
)
from candor.workflow.expunge import ExpungeReport, expunge_subject, request_expunge
from candor.workflow.gallery import gallery_subject, gallery_subjects
from candor.workflow.governed import (
    CandidateReview,
    CandidateView,
    PendingRequest,
    RequestForm,
    RequestOutcome,
    decide_approval,
    outcome_of,
    pending_approvals,
    record_verdict,
    release_lead,
    released_leads,
    request_search,
    request_verify,
    run_approved,
    view_candidates,
)
from candor.workflow.outcomes import LeadOutcomes, record_lead_outcome
from candor.workflow.permissions import PermissionDeniedError
from candor.workflow.retention import RetentionReport, run_retention
from candor.workflow.thresholds import VERIFY_THRESHOLD, VerifyThreshold
from candor.workflow.workspaces import (
    PURPOSES,
    USER_ERRORS,
    create_workspace,
    open_workflow,
    upgrade_and_seal,
    upgrade_workspace,
)

__all__ = [
    "LEAD_OUTCOMES",
    "OPERATIONAL_SOURCES",
    "POOL_TIMEOUT_SECONDS",
    "PURPOSES",
    "SOURCE_TYPES",
    "USER_ERRORS",
    "VERDICTS",
    "VERIFY_THRESHOLD",
    "Actor",
    "CandidateReview",
    "CandidateView",
    "EnrolmentOutcome",
    "EnrolmentRequest",
    "EnrolmentStatus",
    "EnrolmentSummary",
    "ExpungeReport",
    "FaceIndexError",
    "LeadOutcome",
    "LeadOutcomes",
    "MultipleFacesError",
    "NotFoundError",
    "PendingRequest",
    "PermissionDeniedError",
    "ProbeRefusedError",
    "Provenance",
    "RequestForm",
    "RequestNotFoundError",
    "RequestOutcome",
    "RetentionReport",
    "SubjectDetail",
    "SubjectNotFoundError",
    "SubjectSummary",
    "Verdict",
    "VerifyThreshold",
    "Workflow",
    "WorkflowError",
    "WorkspaceBusyError",
    "active_policy",
    "authenticate",
    "create_workspace",
    "decide_approval",
    "enrol_files",
    "example_policy_path",
    "expunge_subject",
    "gallery_subject",
    "gallery_subjects",
    "open_workflow",
    "outcome_of",
    "pending_approvals",
    "record_lead_outcome",
    "record_verdict",
    "release_lead",
    "released_leads",
    "request_expunge",
    "request_search",
    "request_verify",
    "requests_from_folders",
    "run_approved",
    "run_retention",
    "server_threads",
    "upgrade_and_seal",
    "upgrade_workspace",
    "view_candidates",
]
