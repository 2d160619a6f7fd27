"""A retention run killed between its purge's commit and the erasure of the probe files
leaves nothing behind once the workspace next starts (found by bench/kill_harness.py).

The purge names the files it will erase in pending/ before it commits, as expungement
does, so the next start's upkeep erases them; without that record nothing but a full
`candor check --fix` ever found them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from candor.cli.accounts import save_token
from candor.store import Workspace
from candor.store.upkeep import check_vault
from candor.workflow import EnrolmentRequest, enrol_files, request_search
from candor.workflow.accounts import login
from tests.agency import PASSWORD, make_agency
from tests.support import people_with_photos, photos_of
from tests.workflow.test_governed import FORM, PROVENANCE

pytestmark = [pytest.mark.faces, pytest.mark.slow, pytest.mark.xdist_group("workflow")]

# Runs retention 91 days ahead (two-reviewers keeps probes 90) and dies the way kill -9
# does, with no unwinding and no close, once the probe purge has committed.
KILLED_RUN = textwrap.dedent(
    """
    import os, sys
    from datetime import timedelta
    from pathlib import Path

    from candor.cli.session import read_token
    from candor.workflow import authenticate, open_workflow
    from candor.workflow import retention

    home = Path(sys.argv[1])
    retention._erase_probes = lambda workflow, hashes: os._exit(137)
    workflow = open_workflow(home)
    actor = authenticate(workflow, read_token(home))
    retention.run_retention(workflow, actor, now=workflow.now() + timedelta(days=91))
    """
)


def test_probe_files_of_a_killed_retention_run_are_gone_after_the_next_start(
    tmp_path: Path, faces_dir: Path
) -> None:
    agency = make_agency(tmp_path)
    workflow = agency.workflow
    person = people_with_photos(faces_dir, 1)[0]
    enrol_files(
        workflow, agency["admin1"], [EnrolmentRequest(photos_of(person)[0], "P-1")], PROVENANCE
    )
    request_search(workflow, agency["ana"], photos_of(person)[1], FORM)
    home = workflow.workspace.home
    save_token(home, login(workflow, "admin1", PASSWORD).token)
    workflow.close()

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(home)], capture_output=True, text=True, check=False
    )
    assert killed.returncode == 137, killed.stderr[-2000:]

    with Workspace.open(home) as workspace:  # the next start
        found = check_vault(workspace.engine, workspace.vault, workspace.keys)
    assert found.orphan_probes == ()
    assert found.pending == 0
