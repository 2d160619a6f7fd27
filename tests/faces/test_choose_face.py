from __future__ import annotations

import pytest

from candor.faces import choose_face
from tests.faces.helpers import face_at


def test_single_face_is_chosen() -> None:
    assert choose_face([face_at(10, 10, 50)], 200, 200) == 0


def test_largest_face_wins_when_all_are_central() -> None:
    faces = [face_at(80, 80, 40), face_at(60, 60, 80), face_at(90, 90, 20)]
    assert choose_face(faces, 200, 200) == 1


def test_central_face_beats_a_slightly_larger_one_in_the_corner() -> None:
    corner = face_at(0, 0, 60)
    centre = face_at(75, 75, 50)
    assert choose_face([corner, centre], 200, 200) == 1


def test_a_much_larger_face_off_centre_still_wins() -> None:
    big = face_at(0, 50, 120)
    small_central = face_at(95, 95, 20)
    assert choose_face([big, small_central], 250, 250) == 0


def test_ties_go_to_the_earlier_face() -> None:
    left = face_at(50, 75, 50)
    right = face_at(100, 75, 50)  # mirror image about the centre
    assert choose_face([left, right], 200, 200) == 0
    assert choose_face([right, left], 200, 200) == 0


def test_no_faces_is_an_error() -> None:
    with pytest.raises(ValueError, match="no faces"):
        choose_face([], 100, 100)
