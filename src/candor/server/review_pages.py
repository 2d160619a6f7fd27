"""The review pages: a candidate list for examiners (blind until each gives her verdict),
the material to judge each candidate by, release when the policy's conditions hold, and
the requester's released leads with what came of them.

Every page reads the same workflow view as the CLI and the JSON API (`view_candidates`,
`review_material`, `released_leads`), so what a reader may see and do is decided there,
once: a page only leaves out what the view says she may not do.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from candor.server.api import Rank, SearchId, StateDep, run
from candor.server.web import VERDICT_CHOICES, CallerDep, ReasonField, render, see
from candor.workflow import (
    LEAD_OUTCOMES,
    limits,
    record_lead_outcome,
    record_verdict,
    release_lead,
    released_leads,
    view_candidates,
)
from candor.workflow.probe_check import review_material

page_router = APIRouter(include_in_schema=False)
RankField = Annotated[int, Form(ge=1, le=10_000)]
# Each outcome with its label on the leads page ("no_action": "No action").
OUTCOME_CHOICES = tuple(
    (outcome, outcome.replace("_", " ").capitalize()) for outcome in LEAD_OUTCOMES
)


def _inline(data: bytes | None, kind: str) -> str | None:
    """A picture inline in the page (the CSP allows data: images): no separate URL that
    could be cached or shared."""
    if data is None:
        return None
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


@page_router.get("/review/{search_id}")
def review_page(request: Request, state: StateDep, who: CallerDep, search_id: SearchId) -> Response:
    actor = who.signed_in
    review = run(state, view_candidates, state.workflow, actor, search_id)
    material = run(state, review_material, state.workflow, actor, search_id)
    by_rank = {item.rank: item for item in material.candidates}
    candidates: list[dict[str, Any]] = []
    for candidate in review.candidates:
        item = by_rank.get(candidate.rank)
        candidates.append(
            {
                "view": candidate,
                "photo": _inline(item.photo_jpeg, "jpeg") if item else None,
                "face": _inline(item.crop_png, "png") if item else None,
                "quality": item.quality if item else None,
                "provenance": item.provenance if item else None,
            }
        )
    return render(
        request,
        "review.html",
        title=f"Review request {search_id}",
        review=review,
        probe_photo=_inline(material.probe_photo_jpeg, "jpeg"),
        probe_face=_inline(material.probe_png, "png"),
        probe_quality=material.probe_quality,
        threshold=material.threshold,
        candidates=candidates,
        verdicts=VERDICT_CHOICES,
    )


@page_router.post("/review/{search_id}/verdict")
def review_verdict(
    state: StateDep,
    who: CallerDep,
    search_id: SearchId,
    rank: RankField,
    verdict: Annotated[str, Form(max_length=50)],
    rationale: Annotated[str, Form(max_length=limits.RATIONALE.max_length)] = "",
) -> Response:
    run(state, record_verdict, state.workflow, who.signed_in, search_id, rank, verdict, rationale)
    return see(f"/review/{search_id}#candidate-{rank}")


@page_router.post("/review/{search_id}/release")
def review_release(
    state: StateDep, who: CallerDep, search_id: SearchId, rank: RankField, reason: ReasonField = ""
) -> Response:
    run(state, release_lead, state.workflow, who.signed_in, search_id, rank, reason)
    return see(f"/review/{search_id}#candidate-{rank}")


@page_router.get("/requests/{search_id}/leads")
def leads_page(request: Request, state: StateDep, who: CallerDep, search_id: SearchId) -> Response:
    leads = run(state, released_leads, state.workflow, who.signed_in, search_id)
    return render(
        request,
        "leads.html",
        title=f"Leads of request {search_id}",
        review=leads,
        outcomes=OUTCOME_CHOICES,
    )


@page_router.post("/requests/{search_id}/leads/{rank}/outcome")
def leads_outcome(
    state: StateDep,
    who: CallerDep,
    search_id: SearchId,
    rank: Rank,
    outcome: Annotated[str, Form(max_length=50)],
    note: ReasonField = "",
) -> Response:
    run(state, record_lead_outcome, state.workflow, who.signed_in, search_id, rank, outcome, note)
    return see(f"/requests/{search_id}/leads#lead-{rank}")


__all__ = ["page_router"]
