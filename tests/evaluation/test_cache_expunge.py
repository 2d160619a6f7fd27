"""An expungement drops the photo from every evaluation cache folder this user's Candor
used, not only the one the expunging process would use (issue 15, item 1).

Before: `erase_removed` dropped the photo from `default_cache_dir()` alone, so a photo
evaluated with another CANDOR_CACHE kept its template there after the expungement.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from candor.evaluation.cache import extract_photos
from candor.workflow import EnrolmentRequest, EnrolmentStatus, enrol_files, expunge_subject
from tests.agency import make_agency
from tests.support import evaluation_provenance, people_with_photos, photos_of

pytestmark = [pytest.mark.faces, pytest.mark.xdist_group("workflow")]


def test_an_expungement_reaches_a_cache_folder_another_run_used(
    tmp_path: Path, faces_dir: Path, isolated_cache: Path
) -> None:
    agency = make_agency(tmp_path)
    try:
        people = people_with_photos(faces_dir, 2)
        requests = [EnrolmentRequest(photos_of(person)[0], person.name) for person in people]
        summary = enrol_files(agency.workflow, agency["admin1"], requests, evaluation_provenance())
        assert summary.count(EnrolmentStatus.ENROLLED) == 2, summary.outcomes
        victim, keeper = (photos_of(person)[0] for person in people)
        # An evaluation ran with CANDOR_CACHE pointing elsewhere; the expungement runs
        # with the default folder (this test's own, `isolated_cache`).
        elsewhere = tmp_path / "another-cache"
        assert elsewhere != isolated_cache
        extract_photos([victim, keeper], cache_dir=elsewhere)

        expunge_subject(agency.workflow, agency["admin1"], people[0].name)

        again = extract_photos([victim, keeper], cache_dir=elsewhere)
        assert [outcome.cached for outcome in again] == [False, True]
    finally:
        agency.workflow.close()
