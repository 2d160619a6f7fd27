"""Workflow: enrol, search, verify, expunge; the only part that combines the others and writes."""

from candor.store import (
    OPERATIONAL_SOURCES,
    SOURCE_TYPES,
    Provenance,
    SubjectDetail,
    SubjectSummary,
)
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
    ProbeRefusedError,
    SubjectNotFoundError,
    WorkflowError,
)
from candor.workflow.expunge import ExpungeReport, expunge_subject
from candor.workflow.gallery import gallery_subject, gallery_subjects
from candor.workflow.search import (
    Candidate,
    CandidateList,
    ProbeFace,
    Verification,
    search_probe,
    verify_photos,
)
from candor.workflow.thresholds import VERIFY_THRESHOLD, VerifyThreshold
from candor.workflow.workspaces import (
    PURPOSES,
    USER_ERRORS,
    create_workspace,
    open_workflow,
    upgrade_workspace,
)

__all__ = [
    "OPERATIONAL_SOURCES",
    "PURPOSES",
    "SOURCE_TYPES",
    "USER_ERRORS",
    "VERIFY_THRESHOLD",
    "Candidate",
    "CandidateList",
    "EnrolmentOutcome",
    "EnrolmentRequest",
    "EnrolmentStatus",
    "EnrolmentSummary",
    "ExpungeReport",
    "FaceIndexError",
    "MultipleFacesError",
    "ProbeFace",
    "ProbeRefusedError",
    "Provenance",
    "SubjectDetail",
    "SubjectNotFoundError",
    "SubjectSummary",
    "Verification",
    "VerifyThreshold",
    "Workflow",
    "WorkflowError",
    "create_workspace",
    "enrol_files",
    "expunge_subject",
    "gallery_subject",
    "gallery_subjects",
    "open_workflow",
    "requests_from_folders",
    "search_probe",
    "upgrade_workspace",
    "verify_photos",
]
