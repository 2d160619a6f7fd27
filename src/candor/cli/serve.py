"""`candor serve`: the web pages and JSON API for the workspace, on Uvicorn.

The app is named to Uvicorn by its import string, as any deployment names it, and each
of the `--workers` processes opens the workspace (CANDOR_HOME) itself. The server keeps
no state of its own (lock-outs, sessions, CSRF key and staged photos are in the
database), so workers, and several `candor serve` against one PostgreSQL, serve as one.
On a first run this command, before any worker starts, makes the one-time setup token,
stores its sha256 and prints it once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from candor.cli.jobs import start_runner_process
from candor.cli.options import HomeOption
from candor.cli.output import fail
from candor.workflow import USER_ERRORS, open_workflow
from candor.workflow.server_state import new_setup_token, setup_token_notice

APP_FACTORY = "candor.server.app:create_app_from_env"
# Uvicorn restarts a worker that misses its health check (5 s by default). A worker busy
# loading the face engine on a loaded machine misses it, and is then restarted forever.
WORKER_HEALTHCHECK_SECONDS = 60


def _first_run_token() -> None:
    """On a workspace without users: a new setup token, stored, and shown on the console."""
    try:
        with open_workflow() as workflow:
            token = new_setup_token(workflow)
    except USER_ERRORS as error:
        fail(str(error), as_json=False)
    if token is not None:
        # The console is the one place this secret goes: it proves the person at the
        # first-run page can read the server's console. Never a log file.
        sys.stderr.write(setup_token_notice(token))
        sys.stderr.flush()
    # The workers find the token's digest in the database; none of them makes another.
    os.environ["CANDOR_SETUP_TOKEN_MADE"] = "1"  # noqa: S105 (a flag, not a secret)


def serve(
    home: HomeOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other machines need a reverse proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes, each serving requests in parallel threads.")
    ] = 1,
    one_lock: Annotated[
        bool,
        typer.Option(
            "--one-lock",
            help="Run every workflow call of a process under one lock, one request at a "
            "time (the design before --workers; a baseline for benchmarks).",
        ),
    ] = False,
    idle_minutes: Annotated[
        float, typer.Option(help="A web or API session unused this long ends.")
    ] = 30.0,
    certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM), to serve HTTPS directly.")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve the web application and the JSON API (bound to 127.0.0.1 by default)."""
    import uvicorn

    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=False)
    if (certfile is None) != (keyfile is None):
        fail("give both --certfile and --keyfile, or neither", as_json=False)
    if idle_minutes <= 0:
        fail("--idle-minutes must be above 0", as_json=False)
    if workers < 1:
        fail(f"--workers must be at least 1, not {workers}", as_json=False)
    os.environ["CANDOR_HOME"] = str(home)
    os.environ["CANDOR_IDLE_MINUTES"] = str(idle_minutes)
    os.environ["CANDOR_ONE_LOCK"] = "1" if one_lock else "0"
    _first_run_token()
    start_runner_process(home)  # background jobs: a runner beside the server, in its own process
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        server_header=False,
        log_level="info",
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


def register(app: typer.Typer) -> None:
    """Add `candor serve` to the `candor` app."""
    app.command("serve")(serve)
