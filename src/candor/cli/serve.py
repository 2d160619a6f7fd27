"""`candor serve`: the web pages and JSON API for the workspace, on Uvicorn.

The app is named to Uvicorn by its import string, as any deployment names it, so this
command only chooses the address and the TLS files; the server itself opens the
workspace (CANDOR_HOME) and, on a first run, prints the one-time setup token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from candor.cli.jobs import start_runner_process
from candor.cli.options import HomeOption
from candor.cli.output import fail

APP_FACTORY = "candor.server.app:create_app_from_env"


def serve(
    home: HomeOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other machines need a reverse proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    idle_minutes: Annotated[
        float, typer.Option(help="A web or API session unused this long ends.")
    ] = 30.0,
    certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM), to serve HTTPS directly.")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve the web application and the JSON API (one process, bound to 127.0.0.1)."""
    import uvicorn

    if home is None:
        fail("no workspace given: set CANDOR_HOME or pass --home PATH", as_json=False)
    if (certfile is None) != (keyfile is None):
        fail("give both --certfile and --keyfile, or neither", as_json=False)
    if idle_minutes <= 0:
        fail("--idle-minutes must be above 0", as_json=False)
    os.environ["CANDOR_HOME"] = str(home)
    os.environ["CANDOR_IDLE_MINUTES"] = str(idle_minutes)
    start_runner_process(home)  # background jobs: a runner beside the server, in its own process
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=1,
        # The server's lock-out, idle sessions and setup token live in this one process.
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        server_header=False,
        log_level="info",
    )


def register(app: typer.Typer) -> None:
    """Add `candor serve` to the `candor` app."""
    app.command("serve")(serve)
