"""A failed request's probe photos are erased unless another request of the same process
is storing the same photo and has not committed yet (a threaded server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from candor.store.vault import sha256_hex
from candor.workflow import Workflow
from candor.workflow.upkeep import erase_unheld_probes, probes_in_flight
from candor.workflow.workspaces import create_workspace

PHOTO = b"the bytes of one probe photo"
SHA256 = sha256_hex(PHOTO)


@pytest.fixture
def workflow(tmp_path: Path) -> Iterator[Workflow]:
    with Workflow(create_workspace(tmp_path / "ws", purpose="demo")) as made:
        with made.workspace.session() as session, session.begin():
            key = made.workspace.keys.probe_key(session, SHA256, create=True)
        made.workspace.vault.put_probe(SHA256, PHOTO, key)
        yield made


def test_a_photo_another_request_is_storing_is_kept(workflow: Workflow) -> None:
    vault = workflow.workspace.vault
    with probes_in_flight(workflow, [SHA256]), probes_in_flight(workflow, [SHA256]) as failed:
        erase_unheld_probes(workflow, [SHA256], mine=failed)
        assert vault.has_probe(SHA256)  # the other request may still commit a row naming it
    # That request failed too (or committed: then a row holds it): nobody stores it now.
    erase_unheld_probes(workflow, [SHA256])
    assert not vault.has_probe(SHA256)


def test_a_failed_requests_own_photo_is_erased(workflow: Workflow) -> None:
    with probes_in_flight(workflow, [SHA256]) as failed:
        erase_unheld_probes(workflow, [SHA256], mine=failed)
        assert not workflow.workspace.vault.has_probe(SHA256)


def test_marks_of_another_workspace_do_not_count(workflow: Workflow, tmp_path: Path) -> None:
    with (
        Workflow(create_workspace(tmp_path / "other", purpose="demo")) as other,
        probes_in_flight(other, [SHA256]),
    ):
        erase_unheld_probes(workflow, [SHA256])
        assert not workflow.workspace.vault.has_probe(SHA256)
