"""A photo with several faces: the workflow's refusal names no interface's way to choose."""

from __future__ import annotations

from candor.workflow import MultipleFacesError


def test_the_refusal_names_no_cli_flag_and_each_interface_adds_its_own() -> None:
    error = MultipleFacesError("probe.jpg", [{"face": 0}, {"face": 1}, {"face": 2}])
    assert str(error) == "probe.jpg: 3 faces found; choose one (0 to 2, largest first)"
    assert "--face" not in str(error)
    assert error.count == 3
    assert error.choose("with --face N") == (
        "probe.jpg: 3 faces found; choose one with --face N (0 to 2, largest first)"
    )
