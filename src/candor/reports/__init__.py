"""Reports: usage (for supervisors and auditors) and transparency (for the public).

Every figure is counted from the audit log up to its latest signed checkpoint, after the
log has been verified and the store reconciled with it; a report that cannot be made
honestly is refused with a `ReportError`. This part reads the store and the audit log
and computes: it never writes (the workflow records that a report was made).
"""

from candor.reports.basis import AsOf, ReportBasis, establish_basis
from candor.reports.errors import (
    LogVerificationError,
    NoCheckpointError,
    ReconciliationError,
    ReportError,
)
from candor.reports.render import (
    transparency_html,
    transparency_json,
    usage_board_html,
    usage_csv,
    usage_html,
    usage_json,
)
from candor.reports.transparency import (
    SUPPRESSED,
    TransparencyReport,
    compute_transparency,
    public,
    transparency_from_json,
    transparency_report,
)
from candor.reports.usage import (
    FLAG_LABELS,
    MEASURE_LABELS,
    MEASURES,
    Counts,
    Flag,
    Row,
    UsageQuery,
    UsageReport,
    compute_usage,
    robust_scores,
    usage_report,
    week_label,
)

__all__ = [
    "FLAG_LABELS",
    "MEASURES",
    "MEASURE_LABELS",
    "SUPPRESSED",
    "AsOf",
    "Counts",
    "Flag",
    "LogVerificationError",
    "NoCheckpointError",
    "ReconciliationError",
    "ReportBasis",
    "ReportError",
    "Row",
    "TransparencyReport",
    "UsageQuery",
    "UsageReport",
    "compute_transparency",
    "compute_usage",
    "establish_basis",
    "public",
    "robust_scores",
    "transparency_from_json",
    "transparency_html",
    "transparency_json",
    "transparency_report",
    "usage_board_html",
    "usage_csv",
    "usage_html",
    "usage_json",
    "usage_report",
    "week_label",
]
