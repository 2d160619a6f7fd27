"""What waits for you: `candor todo`, and the lists that drive work a page at a time
(`candor requests`, `candor reviews`; `candor approvals` is with the casework commands).

Lists come oldest first, so nothing waits out of sight behind newer items; `--limit` and
`--offset` page through them, and `--json` prints the page with its total and the next
offset, as the API answers.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from candor.cli.options import HomeOption, JsonOption, LimitOption, OffsetOption
from candor.cli.output import add_literal_row, emit_json, reported_errors, stdout, to_jsonable
from candor.cli.session import logged_in
from candor.workflow.paging import DEFAULT_PAGE_SIZE, Page, PageRequest
from candor.workflow.worklists import (
    RequestSummary,
    ReviewItem,
    Todo,
    my_requests,
    review_queue,
    todo,
)

CaseFilter = Annotated[str | None, typer.Option("--case", help="Only this case number's.")]


def register(app: typer.Typer) -> None:
    """Add `todo`, `requests` and `reviews` to the `candor` app."""
    app.command("todo")(show_todo)
    app.command("requests")(requests)
    app.command("reviews")(reviews)


def page_json(page: Page[Any]) -> dict[str, Any]:
    """A page as the API answers it: items, total, limit, offset, next_offset."""
    return {
        "items": to_jsonable(list(page.items)),
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "next_offset": page.next_offset,
    }


def print_next_page(page: Page[Any]) -> None:
    """Where this page lies in the list, and how to read the next one."""
    following = "" if page.next_offset is None else f"; next page: --offset {page.next_offset}"
    stdout.print(f"Showing {page.describe()}, oldest first{following}.", markup=False)


def show_todo(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """What waits for you: counts of each kind of work your roles do, the oldest first."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        waiting = todo(workflow, actor)
    if as_json:
        emit_json({"ok": True, **to_jsonable(waiting), "waiting": waiting.waiting})
        return
    stdout.print(todo_table(waiting))
    if waiting.checkpoint_age_hours is not None and waiting.checkpoint_at is not None:
        stdout.print(
            f"Newest signed checkpoint: {waiting.checkpoint_at:%Y-%m-%d %H:%M} UTC "
            f"({waiting.checkpoint_age_hours:.1f} hours ago).",
            markup=False,
        )


def todo_table(waiting: Todo) -> Table:
    """One row per kind of work: the count in words and the oldest items."""
    table = Table(title=f"What waits for {waiting.username}")
    for column in ("", "what", "oldest"):
        table.add_column(column)
    for entry in waiting.entries:
        oldest = ", ".join(
            f"{item.ref}"
            + (f" (case {item.case_number})" if item.case_number else "")
            + (f" {item.since:%Y-%m-%d}" if item.since else "")
            for item in entry.oldest
        )
        add_literal_row(table, "!" if entry.alert else "", entry.label, oldest)
    return table


def requests(
    status: Annotated[
        str | None, typer.Option("--status", help="Only requests in this status.")
    ] = None,
    case: CaseFilter = None,
    limit: LimitOption = DEFAULT_PAGE_SIZE,
    offset: OffsetOption = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Your own requests, oldest first, a page at a time."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        page = my_requests(workflow, actor, PageRequest(limit, offset), status=status, case=case)
    if as_json:
        emit_json({"ok": True, **page_json(page)})
        return
    stdout.print(requests_table(page))
    print_next_page(page)


def requests_table(page: Page[RequestSummary]) -> Table:
    table = Table(title=f"Your requests: {page.describe()}")
    for column in ("request", "case", "kind", "status", "made", "candidates"):
        table.add_column(column)
    for item in page.items:
        add_literal_row(
            table,
            str(item.search_id),
            item.case_number,
            item.kind,
            item.status,
            f"{item.created_at:%Y-%m-%d %H:%M}",
            str(item.candidates),
        )
    return table


def reviews(
    case: CaseFilter = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only lists past the policy's review limit.")
    ] = False,
    limit: LimitOption = DEFAULT_PAGE_SIZE,
    offset: OffsetOption = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Candidate lists waiting for review, oldest first, a page at a time (no identities)."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        page = review_queue(workflow, actor, PageRequest(limit, offset), case=case, overdue=overdue)
    if as_json:
        emit_json({"ok": True, **page_json(page)})
        return
    stdout.print(reviews_table(page))
    print_next_page(page)


def reviews_table(page: Page[ReviewItem]) -> Table:
    table = Table(title=f"Candidate lists waiting for review: {page.describe()}")
    for column in ("request", "case", "ran", "candidates", "judged by you", "due by", ""):
        table.add_column(column)
    for item in page.items:
        add_literal_row(
            table,
            str(item.search_id),
            item.case_number,
            "" if item.ran_at is None else f"{item.ran_at:%Y-%m-%d %H:%M}",
            str(item.candidates),
            str(item.reviewed_by_me),
            "" if item.due_by is None else f"{item.due_by:%Y-%m-%d}",
            "overdue" if item.overdue else "",
        )
    return table
