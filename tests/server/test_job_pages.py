"""The jobs pages: who sees which job, its progress, and the cancel button."""

from __future__ import annotations

import pytest

from candor.workflow.jobs import job_view, queue_retention
from tests.server.support import DemoServer
from tests.server.test_admin_pages import as_page_user

pytestmark = pytest.mark.xdist_group("server")


def test_job_pages_show_progress_and_let_the_requester_cancel(demo: DemoServer) -> None:
    agency = demo.agency
    queued = queue_retention(agency.workflow, agency["admin1"])
    try:
        csrf = as_page_user(demo, "admin1")
        listing = demo.client.get("/jobs")
        assert listing.status_code == 200, listing.text
        assert f'href="/jobs/{queued.id}"' in listing.text and "retention run" in listing.text
        page = demo.client.get(f"/jobs/{queued.id}")
        assert page.status_code == 200 and "0 of 1" in page.text
        assert f'action="/jobs/{queued.id}/cancel"' in page.text
        assert demo.client.get("/jobs/999999").status_code == 404

        # An auditor sees every job, with no button to stop another's.
        auditor_csrf = as_page_user(demo, "ada")
        seen = demo.client.get(f"/jobs/{queued.id}")
        assert seen.status_code == 200 and "/cancel" not in seen.text
        refused = demo.client.post(f"/jobs/{queued.id}/cancel", data={"csrf": auditor_csrf})
        assert refused.status_code == 403 and "may not cancel" in refused.text

        csrf = as_page_user(demo, "admin1")
        done = demo.client.post(
            f"/jobs/{queued.id}/cancel", data={"csrf": csrf}, follow_redirects=False
        )
        assert done.status_code == 303, done.text
    finally:
        demo.client.cookies.clear()
    assert job_view(agency.workflow, agency["admin1"], queued.id).state == "cancelled"
