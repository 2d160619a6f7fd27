"""`candor install-service`: a systemd unit for `candor serve` (docs/deploy.md).

An installation act on the machine, outside any workspace: no login, nothing audited.
Every check runs before anything is written (`candor.workflow.service`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from candor.cli.options import HomeOption, JsonOption
from candor.cli.output import emit_json, fail, reported_errors, stdout
from candor.workflow.service import (
    DEFAULT_UNIT_DIR,
    DEFAULT_UNIT_NAME,
    DEFAULT_USER,
    ServiceOptions,
    install_service,
    plan_service,
)


def install_service_command(
    home: HomeOption = None,
    user: Annotated[
        str, typer.Option(help="The unprivileged system user the service runs as.")
    ] = DEFAULT_USER,
    kek_file: Annotated[
        Path | None,
        typer.Option(
            "--kek-file",
            help="The workspace's key-encryption key, outside the workspace and the code, "
            "owned by the service user, mode 0600. Default: CANDOR_KEK_FILE, else the path "
            "the workspace recorded.",
        ),
    ] = None,
    audit_key: Annotated[
        Path | None,
        typer.Option(
            "--audit-key",
            help="The audit log's signing key when it lives outside the workspace "
            "(CANDOR_AUDIT_KEY); its folder, where the witness is, becomes writable.",
        ),
    ] = None,
    unit_dir: Annotated[
        Path, typer.Option("--unit-dir", help="Where the unit file goes.")
    ] = DEFAULT_UNIT_DIR,
    unit_name: Annotated[
        str, typer.Option("--unit-name", help="The unit's file name.")
    ] = DEFAULT_UNIT_NAME,
    environment_file: Annotated[
        Path | None,
        typer.Option(
            "--environment-file",
            help="Write CANDOR_HOME and CANDOR_KEK_FILE to this file (EnvironmentFile=) "
            "instead of the unit (add PGPASSWORD or FORWARDED_ALLOW_IPS there yourself).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address `candor serve` listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    idle_minutes: Annotated[
        float, typer.Option(help="A web or API session unused this long ends.")
    ] = 30.0,
    certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM), for Uvicorn's own HTTPS.")
    ] = None,
    keyfile: Annotated[
        Path | None, typer.Option(help="TLS private key (PEM), owned by the user, mode 0600.")
    ] = None,
    create_user: Annotated[
        bool,
        typer.Option(
            "--create-user",
            help="Make the user (useradd --system, as root) if missing, and give it the "
            "workspace and the key files.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing unit or environment file.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and print the unit; change nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a systemd unit that runs `candor serve` as its own unprivileged user.

    Then: systemctl daemon-reload && systemctl enable --now candor (docs/deploy.md).
    """
    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=as_json)
    options = ServiceOptions(
        home=home,
        user=user,
        kek_file=kek_file,
        audit_key=audit_key,
        unit_dir=unit_dir,
        unit_name=unit_name,
        environment_file=environment_file,
        host=host,
        port=port,
        workers=workers,
        idle_minutes=idle_minutes,
        certfile=certfile,
        keyfile=keyfile,
        create_user=create_user,
        force=force,
    )
    with reported_errors(as_json):
        plan = plan_service(options)
        if not dry_run:
            install_service(plan)
    if as_json:
        emit_json(
            {
                "ok": True,
                "dry_run": dry_run,
                "unit_path": plan.unit_path,
                "unit": plan.unit_text,
                "environment_path": plan.environment_path,
                "environment": plan.environment,
                "user": plan.user,
                "user_created": plan.create_user and not dry_run,
                "exec_start": list(plan.exec_start),
                "notes": list(plan.notes),
            }
        )
        return
    if dry_run:
        # The files as they would be written, byte for byte: no Rich markup or emoji codes.
        if plan.create_user:
            given = ", ".join(str(path) for path in plan.hand_over)
            sys.stdout.write(
                f"# not done (--dry-run): useradd --system {plan.user}; chown -R {plan.user}: "
                f"{given}\n"
            )
        sys.stdout.write(f"# {plan.unit_path} (not written: --dry-run)\n{plan.unit_text}")
        if plan.environment_path is not None and plan.environment_text is not None:
            sys.stdout.write(f"# {plan.environment_path}\n{plan.environment_text}")
    else:
        made = f"Made the system user {plan.user}; gave it the workspace and keys.\n"
        stdout.print(
            f"{made if plan.create_user else ''}Wrote {plan.unit_path}"
            + (f" and {plan.environment_path}" if plan.environment_path else "")
            + f". Start it with: systemctl daemon-reload && systemctl enable --now "
            f"{plan.unit_path.name}",
            markup=False,
            highlight=False,
        )
    for note in plan.notes:
        stdout.print(f"Not checked: {note}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `candor install-service` to the `candor` app."""
    app.command("install-service")(install_service_command)
