"""`candor enrol --nist`: ANSI/NIST-ITL transactions enrolled record by record.

The workflow reads the file into a private staging folder inside the workspace and enrols
each face photo with its record's provenance (`candor.workflow.nist_import`). Here: the
progress bar, the tables of refused records and of those left out (not faces), the JSON,
the exit status (1 when nothing was stored because records were refused), as `--manifest`
prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from rich.table import Table

from candor.cli.imports import enrolment_progress, fail_refused, report_import
from candor.cli.output import add_literal_row, emit_json, fail, reported_errors, stdout
from candor.cli.session import logged_in
from candor.imports.errors import ImportFileError
from candor.imports.nist import default_mapping, load_mapping
from candor.imports.records import ImportRefusal
from candor.workflow import EnrolmentStatus
from candor.workflow.enrolment import check_source_type
from candor.workflow.imports import ImportRefusedError, ImportResult, enrol_planned
from candor.workflow.nist_import import NistImport, plan_nist, queue_nist, staged_transactions


def enrol_nist(
    path: Path,
    mapping: Path | None,
    *,
    refused_options: dict[str, bool],
    source: str,
    legal_basis: str | None,
    retain_until: date | None,
    skip_refused: bool,
    background: bool,
    workers: int | None,
    home: Path | None,
    as_json: bool,
) -> None:
    """`candor enrol --nist PATH [--mapping FILE]`: the options checked, then the import.

    refused_options: the options of `enrol` that --nist does not take, and whether given.
    """
    given = [name for name, on in refused_options.items() if on]
    if given:
        fail(
            f"--nist takes no {', '.join(given)}: each record names its person, source "
            "reference and photo date",
            as_json=as_json,
        )
    try:
        fields = default_mapping() if mapping is None else load_mapping(mapping)
    except ImportFileError as error:
        fail(str(error), as_json=as_json)
    request = NistImport(
        path=path,
        mapping=fields,
        source_type=source,
        legal_basis=legal_basis,
        retain_until=retain_until,
        skip_refused=skip_refused,
    )
    enrol_transactions(request, home=home, as_json=as_json, background=background, workers=workers)


def enrol_transactions(
    request: NistImport,
    *,
    home: Path | None,
    as_json: bool,
    background: bool,
    workers: int | None,
) -> None:
    """Enrol the face photos of the transactions in `request.path`, printing what became of
    each record; nothing is stored when a record is refused, unless `skip_refused`."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        # Who may enrol, and whether this workspace takes the source type, before the
        # file is read (an evaluation workspace takes no booking photos).
        check_source_type(workflow, actor, request.source_type)
        try:
            with staged_transactions(workflow, request) as staged:
                plan = plan_nist(workflow, actor, request, staged)
                skip = request.skip_refused
                if background:
                    result = queue_nist(workflow, actor, request, plan)
                elif not plan.requests or (plan.refused and not skip):
                    result = enrol_planned(workflow, actor, plan, skip_refused=skip)  # refuses
                else:
                    # A bar only when photos will be read now.
                    with enrolment_progress(len(plan.requests)) as advance:
                        result = enrol_planned(
                            workflow,
                            actor,
                            plan,
                            skip_refused=skip,
                            workers=workers,
                            on_outcome=advance,
                        )
        except ImportFileError as error:
            fail(str(error), as_json=as_json)
        except ImportRefusedError as error:
            fail_refused(error, as_json, left_out=staged.skipped)
    _report_nist(result, staged.skipped, as_json)


def _report_nist(result: ImportResult, skipped: Sequence[ImportRefusal], as_json: bool) -> None:
    """As `--manifest` reports, with the records left out (not faces) beside the refused."""
    if as_json:
        payload: dict[str, object] = {"ok": True, "refused": result.refused, "left_out": skipped}
        if result.job is not None:
            payload["job"] = result.job
        elif result.summary is not None:
            summary = result.summary
            payload["counts"] = {status.value: summary.count(status) for status in EnrolmentStatus}
            payload["files"] = summary.outcomes
        emit_json(payload)
        return
    if skipped:
        stdout.print(_left_out_table(skipped))
    report_import(result, as_json)


def _left_out_table(skipped: Sequence[ImportRefusal]) -> Table:
    """Type-10 records that are not faces: not enrolled, and no fault of the export."""
    table = Table(title="Records left out (not face images)")
    table.add_column("record")
    table.add_column("why")
    for item in skipped:
        add_literal_row(table, item.origin, item.reason)
    return table
