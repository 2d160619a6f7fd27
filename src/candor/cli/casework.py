"""Casework commands: governed search and verify, approvals, review, release, retention.

Every command acts as the user logged in with `candor login` in this workspace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from candor.cli.jobs import BackgroundOption, report_queued
from candor.cli.options import HomeOption, JsonOption, LimitOption, OffsetOption
from candor.cli.output import emit_json, fail, reported_errors, stdout, to_jsonable
from candor.cli.render import (
    candidate_review_table,
    pending_table,
    request_outcome_lines,
)
from candor.cli.session import logged_in
from candor.cli.todo import page_json, print_next_page
from candor.workflow import (
    LeadOutcome,
    RequestForm,
    Verdict,
    decide_approval,
    outcome_of,
    pending_approvals,
    record_lead_outcome,
    record_verdict,
    release_lead,
    released_leads,
    request_search,
    request_verify,
    run_approved,
    run_retention,
    view_candidates,
)
from candor.workflow.jobs import queue_retention
from candor.workflow.paging import DEFAULT_PAGE_SIZE, PageRequest

CaseOption = Annotated[str, typer.Option("--case", help="The case number.")]
OffenceOption = Annotated[str, typer.Option("--offence", help="The offence category.")]
PurposeOption = Annotated[str, typer.Option("--purpose", help="Why the search is needed.")]
AgencyOption = Annotated[str, typer.Option("--agency", help="The agency asking for the search.")]
UnitOption = Annotated[str, typer.Option("--unit", help="The unit asking for the search.")]
AuthorisationOption = Annotated[
    str | None, typer.Option("--authorisation", help="A warrant or authorisation reference.")
]
ProbeKindOption = Annotated[
    str, typer.Option("--probe-kind", help="still_photo, video_still, sketch, composite, ...")
]


def register(app: typer.Typer) -> None:
    """Add the casework commands to the `candor` app."""
    app.command("search")(search)
    app.command("verify")(verify)
    app.command("request")(show_request)
    app.command("approvals")(approvals)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("run")(run)
    app.command("candidates")(candidates)
    app.command("review")(review)
    app.command("release")(release)
    app.command("leads")(leads)
    app.command("outcome")(outcome)
    retention = typer.Typer(help="Retention: purge what the policy's periods say is due.")
    retention.command("run")(retention_run)
    app.add_typer(retention, name="retention")


def _form(
    case: str,
    offence: str,
    purpose: str,
    agency: str,
    unit: str,
    probe_kind: str,
    authorisation: str | None,
    edits: str | None,
) -> RequestForm:
    return RequestForm(
        case_number=case,
        offence_category=offence,
        purpose=purpose,
        requesting_agency=agency,
        requesting_unit=unit,
        probe_kind=probe_kind,
        authorisation_ref=authorisation,
        edits=edits,
    )


def search(
    probe: Annotated[Path, typer.Argument(help="The probe photo.")],
    case: CaseOption,
    offence: OffenceOption,
    purpose: PurposeOption,
    agency: AgencyOption,
    unit: UnitOption,
    probe_kind: ProbeKindOption = "still_photo",
    authorisation: AuthorisationOption = None,
    edited_from: Annotated[
        Path | None, typer.Option(help="The original photo, when PROBE is an edited copy.")
    ] = None,
    edits: Annotated[str | None, typer.Option(help="What was changed in the edited probe.")] = None,
    top: Annotated[int, typer.Option(min=1, max=200, help="Candidate list length.")] = 20,
    face: Annotated[int | None, typer.Option(help="Face N of a photo with several.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request a 1:N search; it runs at once if the policy allows it.

    The candidate list goes to examiners for independent review, not to the requester.
    """
    if (edited_from is None) != (edits is None):
        fail("an edited probe needs both --edited-from ORIGINAL and --edits TEXT", as_json=as_json)
    form = _form(case, offence, purpose, agency, unit, probe_kind, authorisation, edits)
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        outcome = request_search(
            workflow, actor, probe, form, top=top, face_index=face, original_probe=edited_from
        )
    _print_outcome(outcome, as_json)


def verify(
    photo_a: Annotated[Path, typer.Argument(help="The first photo.")],
    photo_b: Annotated[Path, typer.Argument(help="The second photo.")],
    case: CaseOption,
    offence: OffenceOption,
    purpose: PurposeOption,
    agency: AgencyOption,
    unit: UnitOption,
    probe_kind: ProbeKindOption = "still_photo",
    authorisation: AuthorisationOption = None,
    face_a: Annotated[int | None, typer.Option(help="Face N of the first photo.")] = None,
    face_b: Annotated[int | None, typer.Option(help="Face N of the second photo.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request a 1:1 comparison of two photos; it runs at once if the policy allows it."""
    form = _form(case, offence, purpose, agency, unit, probe_kind, authorisation, None)
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        outcome = request_verify(
            workflow, actor, photo_a, photo_b, form, first_face=face_a, second_face=face_b
        )
    _print_outcome(outcome, as_json)


def _print_outcome(outcome: object, as_json: bool) -> None:
    from candor.workflow import RequestOutcome

    assert isinstance(outcome, RequestOutcome)
    if as_json:
        emit_json({"ok": outcome.status != "denied", **to_jsonable(outcome)})
    else:
        for line in request_outcome_lines(outcome):
            stdout.print(line)
    if outcome.status == "denied":
        raise typer.Exit(3)


def show_request(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Where a request stands: its decision, status and counts (no identities)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, _actor):
        outcome = outcome_of(workflow, search_id)
    if as_json:
        emit_json({"ok": True, **to_jsonable(outcome)})
        return
    for line in request_outcome_lines(outcome):
        stdout.print(line)


def approvals(
    case: Annotated[str | None, typer.Option("--case", help="Only this case number's.")] = None,
    limit: LimitOption = DEFAULT_PAGE_SIZE,
    offset: OffsetOption = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Requests waiting for a supervisor's approval, oldest first, a page at a time."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        waiting = pending_approvals(workflow, actor, PageRequest(limit, offset), case=case)
    if as_json:
        emit_json({"ok": True, **page_json(waiting)})
        return
    stdout.print(pending_table(waiting))
    print_next_page(waiting)


def approve(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    reason: Annotated[str, typer.Option(help="Why it may run.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a waiting request (a supervisor other than the requester)."""
    _decide(search_id, reason, True, home, as_json)


def reject(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    reason: Annotated[str, typer.Option(help="Why it may not run.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a waiting request (a supervisor other than the requester)."""
    _decide(search_id, reason, False, home, as_json)


def _decide(search_id: int, reason: str, approve: bool, home: Path | None, as_json: bool) -> None:
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        outcome = decide_approval(workflow, actor, search_id, approve=approve, reason=reason)
    if as_json:
        emit_json({"ok": True, **to_jsonable(outcome)})
        return
    stdout.print(f"Request {search_id} is now {outcome.status}.")


def run(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run your approved request (once)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        outcome = run_approved(workflow, actor, search_id)
    _print_outcome(outcome, as_json)


def candidates(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """The candidate list of a search, for examiners and supervisors (recorded)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        listing = view_candidates(workflow, actor, search_id)
    if as_json:
        emit_json({"ok": True, **to_jsonable(listing)})
        return
    stdout.print(candidate_review_table(listing))


def review(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    candidate: Annotated[int, typer.Option(help="The candidate's rank.")],
    verdict: Annotated[Verdict, typer.Option(help="Your verdict on the candidate.")],
    rationale: Annotated[str, typer.Option(help="Why: the features compared.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give your verdict on one candidate (an examiner who did not request the search)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = record_verdict(workflow, actor, search_id, candidate, verdict.value, rationale)
    if as_json:
        emit_json({"ok": True, **to_jsonable(view)})
        return
    stdout.print(f"Verdict recorded on candidate {candidate} of request {search_id}.")


def release(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    candidate: Annotated[int, typer.Option(help="The candidate's rank.")],
    reason: Annotated[str, typer.Option(help="Why the lead is released.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Release a candidate as an investigative lead once enough examiners agree."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        view = release_lead(workflow, actor, search_id, candidate, reason)
    if as_json:
        emit_json({"ok": True, **to_jsonable(view)})
        return
    stdout.print(
        f"Candidate {candidate} of request {search_id} released as an investigative lead "
        "only: not an identification."
    )


def leads(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """The released leads of your request (recorded)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        listing = released_leads(workflow, actor, search_id)
    if as_json:
        emit_json({"ok": True, **to_jsonable(listing)})
        return
    stdout.print(candidate_review_table(listing))


def outcome(
    search_id: Annotated[int, typer.Argument(help="The request number.")],
    rank: Annotated[int, typer.Argument(help="The released lead's candidate rank.")],
    result: Annotated[LeadOutcome, typer.Argument(metavar="OUTCOME", help="What came of it.")],
    note: Annotated[str, typer.Option(help="What other evidence showed (recorded).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record what came of a released lead of your request (the newest stands; recorded)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        recorded = record_lead_outcome(workflow, actor, search_id, rank, result.value, note)
    if as_json:
        emit_json({"ok": True, **to_jsonable(recorded)})
        return
    stdout.print(
        f"Outcome of lead {rank} of request {search_id}: {result.value} "
        f"({len(recorded.history)} recorded; the newest stands)."
    )


def retention_run(
    background: BackgroundOption = False, home: HomeOption = None, as_json: JsonOption = False
) -> None:
    """Purge probes, search records and gallery photos whose retention has run out."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        if background:
            report_queued(queue_retention(workflow, actor), as_json)
            return
        report = run_retention(workflow, actor)
    if as_json:
        emit_json({"ok": True, **to_jsonable(report)})
        return
    stdout.print(
        f"Purged {len(report.probes_purged)} probe(s), "
        f"{len(report.search_records_purged)} search record(s), "
        f"{len(report.gallery_images_purged)} gallery photo(s) "
        f"({len(report.subjects_removed)} subject(s) left with none)."
    )
