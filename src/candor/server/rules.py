"""Who may call each route: the server's table, checked before any route runs.

Every route of the app has a rule here, keyed by its method and path; a route without
one is refused to everybody (and fails the authorisation-matrix test). The rules say
which roles a route serves; the active policy then decides, in the workflow, what each
role may actually do, so a policy can narrow a rule but never widen it. The code-level
invariants hold in both places: the auditor reads and never acts, users and the policy
are the admins' alone.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES: tuple[str, ...] = ("analyst", "examiner", "supervisor", "auditor", "admin")


@dataclass(frozen=True)
class Rule:
    """Public (no login), or the roles of which the caller must hold at least one."""

    roles: frozenset[str]
    public: bool = False

    def allows(self, held: frozenset[str]) -> bool:
        return self.public or bool(self.roles & held)


PUBLIC = Rule(frozenset(), public=True)
ANYONE = Rule(frozenset(ROLES))


def roles(*names: str) -> Rule:
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return Rule(frozenset(names))


REQUESTERS = roles("analyst", "examiner")
REVIEWERS = roles("examiner", "supervisor")
EXAMINERS = roles("examiner")
SUPERVISORS = roles("supervisor")
OVERSIGHT = roles("analyst", "examiner", "supervisor", "auditor")
AUDIT_READERS = roles("auditor", "supervisor")
AUDITORS = roles("auditor")
ADMINS = roles("admin")
ACCOUNT_READERS = roles("admin", "auditor")
LEAD_READERS = roles("analyst", "examiner", "supervisor")
REPORT_READERS = roles("supervisor", "auditor", "admin")
# Evaluation results are the admins' (who run evaluations) and the auditors' (who check
# the agency's accuracy claims).
EVALUATION_READERS = roles("admin", "auditor")
# Background jobs are queued by admins (gallery, retention, evaluations) and auditors
# (evaluations); candor.workflow.jobs decides which job each sees and may stop.
JOB_READERS = roles("admin", "auditor")

# (method, path) -> rule. Web pages and their forms first, then the JSON API.
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/first-run"): PUBLIC,
    ("POST", "/first-run"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): ANYONE,
    ("GET", "/home"): ANYONE,
    ("GET", "/policy"): ANYONE,
    ("GET", "/search"): REQUESTERS,
    ("POST", "/search/check"): REQUESTERS,
    ("POST", "/search"): REQUESTERS,
    ("GET", "/requests"): REQUESTERS,
    ("GET", "/requests/{search_id}"): OVERSIGHT,
    ("POST", "/requests/{search_id}/run"): REQUESTERS,
    ("GET", "/requests/{search_id}/leads"): LEAD_READERS,
    # What came of a lead: its requester records it (the workflow checks she is).
    ("POST", "/requests/{search_id}/leads/{rank}/outcome"): REQUESTERS,
    ("GET", "/approvals"): SUPERVISORS,
    ("POST", "/approvals/{search_id}"): SUPERVISORS,
    ("GET", "/review"): REVIEWERS,
    ("GET", "/review/{search_id}"): REVIEWERS,
    # Supervisors too: a policy's resolve_disagreement_by may name them (the policy's
    # candidate.review decides, in the workflow).
    ("POST", "/review/{search_id}/verdict"): REVIEWERS,
    ("POST", "/review/{search_id}/release"): EXAMINERS,
    ("GET", "/audit"): AUDIT_READERS,
    ("POST", "/audit/export"): AUDIT_READERS,
    ("POST", "/audit/checkpoint"): AUDITORS,
    ("GET", "/gallery"): ADMINS,
    ("GET", "/gallery/{subject_ref}"): ADMINS,
    ("POST", "/gallery/enrol"): ADMINS,
    ("GET", "/users"): ACCOUNT_READERS,
    ("GET", "/directory"): ACCOUNT_READERS,
    ("POST", "/users"): ADMINS,
    ("POST", "/changes/{change_id}/confirm"): ADMINS,
    ("POST", "/changes/{change_id}/reject"): ADMINS,
    ("POST", "/users/{username}/disable"): ADMINS,
    ("POST", "/users/{username}/enable"): ADMINS,
    ("POST", "/users/{username}/roles"): ADMINS,
    ("POST", "/users/{username}/roles/revoke"): ADMINS,
    ("POST", "/users/{username}/certificate"): ADMINS,
    ("POST", "/users/{username}/password"): ADMINS,
    ("GET", "/password"): ANYONE,
    ("POST", "/password"): ANYONE,
    ("POST", "/gallery/{subject_ref}/expunge"): ADMINS,
    ("POST", "/gallery/enrol/face"): ADMINS,
    ("GET", "/verify"): REQUESTERS,
    ("POST", "/verify"): REQUESTERS,
    ("POST", "/policy"): ADMINS,
    ("GET", "/reports/usage"): REPORT_READERS,
    ("GET", "/reports/usage/document"): REPORT_READERS,
    # The transparency report is for the public: making it is an audited read that needs
    # `reports.read`, so a report reader publishes it (into the signed log), and anyone,
    # without a login, reads the published copy: aggregates only, nothing live.
    ("GET", "/transparency"): PUBLIC,
    ("GET", "/transparency/{year}"): PUBLIC,
    ("POST", "/transparency/{year}/publish"): REPORT_READERS,
    ("GET", "/evaluation"): EVALUATION_READERS,
    ("GET", "/jobs"): JOB_READERS,
    ("GET", "/jobs/{job_id}"): JOB_READERS,
    ("POST", "/jobs/{job_id}/cancel"): JOB_READERS,
    ("POST", "/jobs/{job_id}/resume"): JOB_READERS,
    # JSON API
    ("GET", "/api/status"): PUBLIC,
    ("POST", "/api/login"): PUBLIC,
    ("POST", "/api/logout"): ANYONE,
    ("GET", "/api/me"): ANYONE,
    ("POST", "/api/probe-checks"): REQUESTERS,
    ("POST", "/api/searches"): REQUESTERS,
    ("POST", "/api/verifications"): REQUESTERS,
    ("GET", "/api/requests"): REQUESTERS,
    ("GET", "/api/requests/{search_id}"): OVERSIGHT,
    ("POST", "/api/requests/{search_id}/run"): REQUESTERS,
    ("GET", "/api/requests/{search_id}/leads"): LEAD_READERS,
    ("GET", "/api/approvals"): SUPERVISORS,
    ("POST", "/api/approvals/{search_id}"): SUPERVISORS,
    ("GET", "/api/reviews"): REVIEWERS,
    ("GET", "/api/requests/{search_id}/candidates"): REVIEWERS,
    ("POST", "/api/requests/{search_id}/candidates/{rank}/verdict"): EXAMINERS,
    ("POST", "/api/requests/{search_id}/candidates/{rank}/release"): EXAMINERS,
    # Only the requester records an outcome; the workflow refuses anyone else.
    ("POST", "/api/requests/{search_id}/candidates/{rank}/outcome"): REQUESTERS,
    ("GET", "/api/todo"): ANYONE,
    ("POST", "/api/password"): ANYONE,
    ("POST", "/api/users/{username}/password"): ADMINS,
    ("POST", "/api/gallery/subjects/{subject_ref}/expunge"): ADMINS,
    ("GET", "/api/audit/entries"): AUDIT_READERS,
    ("GET", "/api/audit/verification"): AUDIT_READERS,
    ("GET", "/api/audit/checkpoint"): AUDIT_READERS,
    ("POST", "/api/audit/checkpoints"): AUDITORS,
    ("GET", "/api/audit/entries/{seq}/proof"): AUDIT_READERS,
    ("POST", "/api/audit/export"): AUDIT_READERS,
    ("GET", "/api/policy"): ANYONE,
    ("POST", "/api/policy"): ADMINS,
    ("GET", "/api/users"): ACCOUNT_READERS,
    ("POST", "/api/users"): ADMINS,
    ("POST", "/api/users/{username}/roles"): ADMINS,
    ("DELETE", "/api/users/{username}/roles/{role}"): ADMINS,
    ("POST", "/api/users/{username}/disable"): ADMINS,
    ("POST", "/api/users/{username}/enable"): ADMINS,
    ("POST", "/api/users/{username}/certificate"): ADMINS,
    ("GET", "/api/changes"): ACCOUNT_READERS,
    ("GET", "/api/models"): ACCOUNT_READERS,
    ("GET", "/api/models/{name}"): ACCOUNT_READERS,
    ("POST", "/api/changes/{change_id}/confirm"): ADMINS,
    ("POST", "/api/changes/{change_id}/reject"): ADMINS,
    ("GET", "/api/gallery/subjects"): ADMINS,
    ("GET", "/api/gallery/subjects/{subject_ref}"): ADMINS,
    ("POST", "/api/gallery/enrolments"): ADMINS,
    ("GET", "/api/reports/usage"): REPORT_READERS,
    ("GET", "/api/reports/usage.csv"): REPORT_READERS,
    ("GET", "/api/reports/transparency/{year}"): REPORT_READERS,
    ("GET", "/api/evaluation/latest"): EVALUATION_READERS,
}


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a route, or None when it has none (and so is refused)."""
    return RULES.get((method.upper(), path))
