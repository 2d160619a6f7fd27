"""The `candor` command line: init, enrol, search, verify, subjects, show, expunge.

Every command that prints results takes `--json`; then standard output carries exactly
one JSON object. Errors print a one-line reason and exit non-zero.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from candor.cli import (
    accounts,
    audit,
    backup,
    calibrate,
    casework,
    directory,
    evaluate,
    jobs,
    keys,
    models,
    reenrol,
    reports,
    serve,
    service,
    simulate,
    todo,
    upkeep,
)
from candor.cli.imports import enrol_records, enrolment_progress
from candor.cli.nist import enrol_nist
from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import (
    counted_progress,
    emit_json,
    fail,
    reported_errors,
    stdout,
    to_jsonable,
)
from candor.cli.render import (
    enrolment_table,
    subject_table,
    subjects_table,
)
from candor.cli.session import logged_in
from candor.imports.manifest import read_manifest
from candor.workflow import (
    PURPOSES,
    SOURCE_TYPES,
    Actor,
    EnrolmentRequest,
    EnrolmentStatus,
    EnrolmentSummary,
    Provenance,
    Workflow,
    create_workspace,
    enrol_files,
    gallery_subject,
    gallery_subjects,
    request_expunge,
    requests_from_folders,
    upgrade_and_seal,
)
from candor.workflow.imports import DEFAULT_SOURCE_TYPE
from candor.workflow.jobs import queue_enrolment
from candor.workflow.reenrol import recipe_census

app = typer.Typer(
    name="candor",
    help="Candor: accountable face search over a lawfully held gallery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _parse_date(text: str, option: str, as_json: bool) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a date in YYYY-MM-DD form", as_json=as_json)


@app.command()
def init(
    home: HomeOption = None,
    purpose: Annotated[
        str, typer.Option(help=f"What the workspace is for: {', '.join(PURPOSES)}.")
    ] = "operational",
    timezone: Annotated[
        str, typer.Option(help="IANA time zone that defines days and weeks.")
    ] = "UTC",
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help=(
                "Keep the workspace's tables in this empty PostgreSQL database "
                "(postgresql://USER@HOST/DATABASE; no password in it: use ~/.pgpass or "
                "PGPASSWORD). Default: CANDOR_DATABASE_URL, else a SQLite file in the folder."
            ),
        ),
    ] = None,
    kek_file: Annotated[
        Path | None,
        typer.Option(
            "--kek-file",
            help=(
                "The key-encryption key that wraps every key sealing the photos and "
                "templates: used if the file exists, made (mode 0600) if not. Default: "
                "CANDOR_KEK_FILE (a path, never the key), else "
                "~/.config/candor/<workspace id>.kek. Keep it outside the workspace."
            ),
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Make a workspace in a new or empty folder. Creates no users and never prompts.

    Its database is a SQLite file in the folder, or a PostgreSQL server with --database.
    Its photos and templates are sealed under keys wrapped by the key-encryption key
    (--kek-file): back that file up apart from the workspace; without it nothing can be read.
    """
    if home is None:
        fail("no folder given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    with reported_errors(as_json):
        workspace = create_workspace(
            home, purpose=purpose, timezone=timezone, database_url=database, kek_file=kek_file
        )
        kek_path, kek_fingerprint = workspace.keys.kek_path, workspace.keys.kek_fingerprint
        workspace.close()
    if as_json:
        emit_json(
            {
                "ok": True,
                "home": workspace.home,
                "purpose": workspace.purpose,
                "timezone": workspace.timezone,
                "workspace_id": workspace.workspace_id,
                "database_url": workspace.database_url,
                "key_encryption_key": {"path": kek_path, "fingerprint": kek_fingerprint},
            }
        )
        return
    stdout.print(
        f"Made {_article(workspace.purpose)} {workspace.purpose} workspace at {workspace.home} "
        f"(time zone {workspace.timezone}).\nPoint Candor at it with: "
        f"export CANDOR_HOME={workspace.home}\n"
        f"Its key-encryption key is {kek_path} (fingerprint {kek_fingerprint}). Back it up "
        "apart from the workspace: without it no photo or template can be read, and a backup "
        "kept beside the workspace protects nothing."
    )


@app.command()
def upgrade(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Bring an older workspace's database up to this Candor's schema (back it up first),
    and seal the photos, crops, probes and templates it stored in the clear, overwriting
    the plaintext files with zeros. Safe to run again after an interruption."""
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    with reported_errors(as_json), counted_progress("sealing files", hidden=as_json) as advance:
        workspace, sealed = upgrade_and_seal(home, advance)
        kek = workspace.keys.kek_path
        workspace.close()
    figures = {
        "images": sealed.files.images,
        "crops": sealed.files.crops,
        "probes": sealed.files.probes,
        "templates": sealed.templates,
        "unowned_plaintext_files": sealed.files.unowned,
    }
    if as_json:
        emit_json({"ok": True, "home": home, "sealed": figures, "key_encryption_key": kek})
        return
    stdout.print(f"The workspace at {home} is at the current schema.")
    if sealed.total:
        stdout.print(
            f"Sealed {sealed.files.images} photo(s), {sealed.files.crops} crop(s), "
            f"{sealed.files.probes} probe(s) and {sealed.templates} template(s) under keys "
            f"wrapped by the key-encryption key {kek}; back that file up apart from the "
            "workspace: without it nothing can be read."
        )
    if sealed.files.unowned:
        stdout.print(
            f"{sealed.files.unowned} plaintext file(s) no row names were left: "
            "`candor check --fix` erases them."
        )


@app.command()
def enrol(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Photo files, or one folder with --from-folders."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help=f"Source type: {', '.join(SOURCE_TYPES)} (with --manifest or --nist: "
            "booking_photo)."
        ),
    ] = None,
    source_ref: Annotated[
        str | None, typer.Option(help="The source's own reference (e.g. a booking record).")
    ] = None,
    legal_basis: Annotated[
        str | None,
        typer.Option(
            help="The law or consent under which the photos are held "
            "(with --manifest or --nist: for records without one)."
        ),
    ] = None,
    collected: Annotated[
        str | None,
        typer.Option(
            help="Date the photos were collected, YYYY-MM-DD (with --manifest: for rows "
            "without one)."
        ),
    ] = None,
    retain_until: Annotated[
        str | None,
        typer.Option(
            help="Date by which they must be deleted, YYYY-MM-DD (with --manifest or --nist: "
            "for records without one; else the policy's longest)."
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(help="The person's reference (e.g. booking number) for every file."),
    ] = None,
    from_folders: Annotated[
        bool,
        typer.Option(
            "--from-folders", help="PATH holds one folder per person, named by reference."
        ),
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="A booking system's CSV export, one row per photo with its own provenance "
            "(see docs/admin.md).",
        ),
    ] = None,
    nist: Annotated[
        Path | None,
        typer.Option(
            "--nist",
            help="ANSI/NIST-ITL transactions from a booking system (a file, or a folder of "
            "them): each FACE Type-10 record enrolled with its record's provenance (see "
            "docs/admin.md).",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="With --nist: a TOML file saying which fields fill the provenance "
            "(default: subject 2.015, source reference 1.009, collected 10.005).",
        ),
    ] = None,
    skip_refused: Annotated[
        bool,
        typer.Option(
            "--skip-refused",
            help="With --manifest or --nist: enrol the records that pass and report the "
            "others (by default a refused record stops the whole import).",
        ),
    ] = False,
    face: Annotated[
        int | None, typer.Option(help="Enrol face N (0 = largest) instead of the most central.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default: one per core).")] = None,
    background: jobs.BackgroundOption = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enrol lawfully sourced photos, each with its provenance; duplicates change nothing."""
    if nist is not None:
        enrol_nist(
            nist,
            mapping,
            refused_options={
                "PATH": bool(paths),
                "--subject": subject is not None,
                "--from-folders": from_folders,
                "--source-ref": source_ref is not None,
                "--collected": collected is not None,
                "--face": face is not None,
                "--manifest": manifest is not None,
            },
            source=source or DEFAULT_SOURCE_TYPE,
            legal_basis=legal_basis,
            retain_until=(
                None
                if retain_until is None
                else _parse_date(retain_until, "--retain-until", as_json)
            ),
            skip_refused=skip_refused,
            background=background,
            workers=workers,
            home=home,
            as_json=as_json,
        )
        return
    if mapping is not None:
        fail("--mapping goes with --nist", as_json=as_json)
    if manifest is not None:
        given = {
            "PATH": bool(paths),
            "--subject": subject is not None,
            "--from-folders": from_folders,
            "--source-ref": source_ref is not None,
            "--face": face is not None,
        }
        if any(given.values()):
            fail(
                f"--manifest takes no {', '.join(name for name, on in given.items() if on)}: "
                "each row names its photo, person and source reference",
                as_json=as_json,
            )
        enrol_records(
            lambda: read_manifest(manifest),
            home=home,
            as_json=as_json,
            source=source or DEFAULT_SOURCE_TYPE,
            legal_basis=legal_basis,
            collected=None if collected is None else _parse_date(collected, "--collected", as_json),
            retain_until=(
                None
                if retain_until is None
                else _parse_date(retain_until, "--retain-until", as_json)
            ),
            skip_refused=skip_refused,
            background=background,
            workers=workers,
        )
        return
    if skip_refused:
        fail("--skip-refused goes with --manifest", as_json=as_json)
    needed = {
        "--source": source,
        "--source-ref": source_ref,
        "--legal-basis": legal_basis,
        "--collected": collected,
        "--retain-until": retain_until,
    }
    missing = [name for name, value in needed.items() if value is None]
    if missing:
        fail(
            f"give {', '.join(missing)} (each photo's provenance), or --manifest FILE.csv",
            as_json=as_json,
        )
    assert source is not None and source_ref is not None and legal_basis is not None
    assert collected is not None and retain_until is not None
    if not paths:
        fail("give the photo files, or a folder with --from-folders", as_json=as_json)
    if from_folders == (subject is not None):
        fail(
            "give either --subject REF (for files) or --from-folders (for a folder)",
            as_json=as_json,
        )
    provenance = Provenance(
        source_type=source,
        source_ref=source_ref,
        legal_basis=legal_basis,
        collected_on=_parse_date(collected, "--collected", as_json),
        retain_until=_parse_date(retain_until, "--retain-until", as_json),
    )
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        if from_folders:
            if len(paths) != 1:
                fail("--from-folders takes exactly one folder", as_json=as_json)
            requests = requests_from_folders(paths[0])
        else:
            assert subject is not None
            requests = [EnrolmentRequest(path, subject) for path in paths]
        if background:
            jobs.report_queued(
                queue_enrolment(workflow, actor, requests, provenance, face_index=face),
                as_json,
            )
            return
        summary = _enrol_with_progress(workflow, actor, requests, provenance, workers, face)
        _warn_if_stale(workflow, actor)
    counts = {status.value: summary.count(status) for status in EnrolmentStatus}
    if as_json:
        emit_json({"ok": True, "counts": counts, "files": summary.outcomes})
        return
    if (
        any(o.status is not EnrolmentStatus.ENROLLED for o in summary.outcomes)
        or len(summary.outcomes) <= 20
    ):
        stdout.print(enrolment_table(summary, show_enrolled=len(summary.outcomes) <= 20))
    stdout.print(
        f"{counts['enrolled']} enrolled, {counts['duplicate']} duplicate(s) (nothing changed), "
        f"{counts['refused']} refused, of {len(summary.outcomes)} file(s)."
    )


def _warn_if_stale(workflow: Workflow, actor: Actor) -> None:
    """Tell a gallery admin, on standard error, when templates were made by an older recipe."""
    census = recipe_census(workflow, actor)
    if census.stale:
        sys.stderr.write(f"candor: warning: {census.advice}\n")


def _enrol_with_progress(
    workflow: Workflow,
    actor: Actor,
    requests: list[EnrolmentRequest],
    provenance: Provenance,
    workers: int | None,
    face: int | None,
) -> EnrolmentSummary:
    with enrolment_progress(len(requests)) as advance:
        return enrol_files(
            workflow,
            actor,
            requests,
            provenance,
            workers=workers,
            face_index=face,
            on_outcome=advance,
        )


@app.command()
def subjects(
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most N subjects.")] = None,
    offset: Annotated[int, typer.Option(min=0, help="Skip the first N subjects.")] = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List enrolled subjects with their numbers of images and templates."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        listed = gallery_subjects(workflow, actor, limit=limit, offset=offset)
        _warn_if_stale(workflow, actor)
    if as_json:
        emit_json({"ok": True, "subjects": listed})
        return
    stdout.print(subjects_table(listed))


@app.command()
def show(
    subject: Annotated[str, typer.Argument(help="The subject's reference.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """One subject: every image with its provenance, face choice, quality and templates."""
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        detail = gallery_subject(workflow, actor, subject)
    if as_json:
        emit_json({"ok": True, **_fields(detail)})
        return
    stdout.print(subject_table(detail))


@app.command()
def expunge(
    subject: Annotated[str, typer.Argument(help="The subject's reference.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (recorded in the audit log with the change).")
    ] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask to remove a subject's images, crops, templates and index entries for good.

    Another admin confirms with `candor admin confirm ID`; only then is anything removed.
    """
    if not yes:
        fail(
            f"expunging {subject} cannot be undone; run again with --yes to confirm",
            as_json=as_json,
        )
    with reported_errors(as_json), logged_in(home, as_json) as (workflow, actor):
        change = request_expunge(workflow, actor, subject, reason)
    if as_json:
        emit_json({"ok": True, "change": change})
        return
    stdout.print(
        f"Requested change {change.id}: expunge {subject}. Nothing is removed until another "
        f"admin runs `candor admin confirm {change.id}`."
    )


def _fields(result: object) -> dict[str, object]:
    converted = to_jsonable(result)
    assert isinstance(converted, dict)
    return converted


accounts.register(app)
calibrate.register(app)
casework.register(app)
audit.register(app)
keys.register(app)
simulate.register(app)
evaluate.register(app)
reports.register(app)
serve.register(app)
service.register(app)
reenrol.register(app)
models.register(app)
directory.register(app)
upkeep.register(app)
jobs.register(app)
backup.register(app)
todo.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
