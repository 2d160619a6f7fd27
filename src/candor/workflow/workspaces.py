"""Making and opening workspaces, for the interfaces that sit above the workflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from candor.faces import EngineSettings
from candor.images import ImageError
from candor.sealing import KeyFileError, SealError
from candor.store import PURPOSES, StoreError, Workspace, workspace_home_from_env
from candor.workflow.audit_trail import start_audit_log
from candor.workflow.context import Workflow
from candor.workflow.errors import WorkflowError
from candor.workflow.upkeep import SealedWorkspace, seal_workspace

# Every error an interface should show a person as a one-line reason, not a traceback.
# A data key that does not unwrap or a file that does not open (damaged or altered) is
# one line naming which, like a store error.
USER_ERRORS: tuple[type[Exception], ...] = (
    WorkflowError,
    StoreError,
    ImageError,
    SealError,
    KeyFileError,
)


def create_workspace(
    home: Path,
    *,
    purpose: str = "operational",
    timezone: str = "UTC",
    database_url: str | None = None,
    kek_file: Path | None = None,
) -> Workspace:
    """Make a workspace in a new or empty folder (see DESIGN.md, Workspaces), with its
    audit log's signing key and witness: the only time a key is made without a rotation.

    database_url: an empty PostgreSQL database for its tables (default: CANDOR_DATABASE_URL,
        else a SQLite file in the folder).
    kek_file: the key-encryption key's file, used if it exists, made (0600) if not (default:
        $CANDOR_KEK_FILE, else ~/.config/candor/<workspace id>.kek)."""
    return Workspace.create(
        home,
        purpose=purpose,
        timezone=timezone,
        start_audit_log=start_audit_log,
        database_url=database_url,
        kek_file=kek_file,
    )


def upgrade_workspace(home: Path) -> Workspace:
    """Open a workspace, migrating its database to the current schema if it is older and
    sealing what it stored in the clear (see `upgrade_and_seal`)."""
    return upgrade_and_seal(home)[0]


def upgrade_and_seal(
    home: Path, on_progress: Callable[[int, int], None] | None = None
) -> tuple[Workspace, SealedWorkspace]:
    """Open a workspace, migrating its database to the current schema if it is older, then
    seal every photo, crop, probe and template it still holds in the clear (a workspace
    from before encryption at rest; resumable, and cheap once done). Returns the open
    workspace and what was sealed; on_progress gets (files looked at, files in all)."""
    workspace = Workspace.open(home, upgrade=True)
    try:
        sealed = seal_workspace(workspace, on_progress)
    except BaseException:
        workspace.close()
        raise
    return workspace, sealed


def open_workflow(home: Path | None = None, settings: EngineSettings | None = None) -> Workflow:
    """Open the workspace at `home` (default: CANDOR_HOME) for the workflow's verbs.

    The face engine uses the workspace's active model (`candor.workflow.models`), read on
    first use, unless `settings` pins others."""
    return Workflow(Workspace.open(home or workspace_home_from_env()), settings)


__all__ = [
    "PURPOSES",
    "USER_ERRORS",
    "create_workspace",
    "open_workflow",
    "upgrade_and_seal",
    "upgrade_workspace",
]
