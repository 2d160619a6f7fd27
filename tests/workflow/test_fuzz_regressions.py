"""The text limits refuse control characters where they make no sense (found fuzzing the
API on PostgreSQL, which cannot store a NUL in text): one rule for the CLI, the API and
the pages, since each reaches the workflow's checks."""

from __future__ import annotations

import pytest

from candor.workflow import limits
from candor.workflow.limits import ControlCharacterError, TextRefusedError


@pytest.mark.parametrize("limit", limits.TEXT_LIMITS, ids=lambda limit: limit.field)
def test_every_field_refuses_a_nul_naming_itself_never_the_value(
    limit: limits.TextLimit,
) -> None:
    with pytest.raises(ControlCharacterError) as caught:
        limit.check("secret\x00value")
    message = str(caught.value)
    assert f"({limit.field})" in message and "(U+0000) at character 7" in message
    assert "secret" not in message


def test_one_line_fields_refuse_every_control_character() -> None:
    for character in ("\t", "\n", "\r", "\x1b", "\x7f", "\x85"):
        with pytest.raises(TextRefusedError, match=r"\(case_number\)"):
            limits.CASE_NUMBER.check(f"2026{character}1")
    # Not control characters: accents, other scripts, spaces.
    assert limits.CASE_NUMBER.check("Café 2026 — № 1 案件") == "Café 2026 — № 1 案件"


def test_prose_keeps_line_breaks_and_tabs_but_no_other_control() -> None:
    note = "first line\r\nsecond\tindented"
    assert limits.REASON.check(note) == note
    with pytest.raises(ControlCharacterError, match=r"\(reason\).*U\+001B"):
        limits.REASON.check("colour \x1b[31mred")


def test_a_password_refuses_only_nul() -> None:
    assert limits.PASSWORD.check("tab\tin a passphrase") == "tab\tin a passphrase"
    with pytest.raises(ControlCharacterError, match=r"\(password\)"):
        limits.PASSWORD.check("nul\x00")
