"""How long each free-text field may be: the one list the CLI, the API and the pages read.

The workflow refuses a value over its limit, naming the field and the limit, whichever
interface it came through; the API's and the pages' declared caps are these same numbers,
so their schemas say what the workflow enforces. The limits match the store's columns
(String(200) for a case number): SQLite would keep a pasted essay as a case number and
PostgreSQL would refuse it with a database error, so neither is left to the database.

The same goes for control characters: PostgreSQL cannot store a NUL in a text column (a
case number with one was a database error, a 500 through the API), and a tab or an escape
sequence in a case number or a username only hides what it says in the log and on the
pages. A one-line field refuses every control character; a field written as prose
(reasons, notes, the legal basis) keeps its line breaks and tabs; a password refuses only
NUL, since it is never shown or stored as text.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from candor.workflow.errors import WorkflowError


class TextRefusedError(WorkflowError):
    """A free-text value its field does not take: too long, or with a control character."""


class TextTooLongError(TextRefusedError):
    """A free-text value is longer than its field allows."""

    def __init__(self, limit: TextLimit, length: int) -> None:
        self.limit = limit
        self.length = length
        super().__init__(
            f"the {limit.label} ({limit.field}) has {length:,} characters; "
            f"at most {limit.max_length:,} are allowed"
        )


class ControlCharacterError(TextRefusedError):
    """A free-text value holds a control character its field does not take (a NUL...)."""

    def __init__(self, limit: TextLimit, character: str, position: int) -> None:
        self.limit = limit
        self.character = character
        self.position = position
        # The code point and where, never the value: it may be a password.
        super().__init__(
            f"the {limit.label} ({limit.field}) has a control character "
            f"(U+{ord(character):04X}) at character {position + 1:,}; "
            f"{limit.controls_allowed()}"
        )


# Which control characters a field takes: none (one line), line breaks and tabs (prose),
# all but NUL (a password: never shown, never stored as text).
Controls = Literal["none", "line-breaks", "all-but-nul"]
_LINE_BREAKS = frozenset("\t\n\r")


@dataclass(frozen=True)
class TextLimit:
    """One free-text field: its name in forms and JSON, its name in sentences, its cap."""

    field: str
    label: str
    max_length: int
    controls: Controls = "none"

    def check(self, value: str) -> str:
        """The value itself when the field takes it; TextRefusedError otherwise."""
        if len(value) > self.max_length:
            raise TextTooLongError(self, len(value))
        for position, character in enumerate(value):
            if self._refuses(character):
                raise ControlCharacterError(self, character, position)
        return value

    def _refuses(self, character: str) -> bool:
        if character == "\x00":
            return True
        if self.controls == "all-but-nul" or unicodedata.category(character) != "Cc":
            return False
        return not (self.controls == "line-breaks" and character in _LINE_BREAKS)

    def controls_allowed(self) -> str:
        """What the field takes, for the refusal's message."""
        if self.controls == "line-breaks":
            return "only line breaks and tabs are allowed"
        if self.controls == "all-but-nul":
            return "a NUL is not allowed"
        return "no control characters (tabs, line breaks, NUL...) are allowed"

    def check_optional(self, value: str | None) -> str | None:
        return None if value is None else self.check(value)


# The case form of every search and verification.
CASE_NUMBER = TextLimit("case_number", "case number", 200)
OFFENCE_CATEGORY = TextLimit("offence_category", "offence category", 100)
PURPOSE = TextLimit("purpose", "purpose", 100)
REQUESTING_AGENCY = TextLimit("requesting_agency", "requesting agency", 200)
REQUESTING_UNIT = TextLimit("requesting_unit", "requesting unit", 200)
PROBE_KIND = TextLimit("probe_kind", "probe kind", 50)
AUTHORISATION_REF = TextLimit("authorisation_ref", "authorisation reference", 200)
EDITS = TextLimit("edits", "description of the edits", 2000, "line-breaks")

# Why a person decided as they did: approvals, verdicts, releases, rejected changes.
REASON = TextLimit("reason", "reason", 2000, "line-breaks")
RATIONALE = TextLimit("rationale", "rationale", 2000, "line-breaks")

# Gallery enrolment: who the photos show and where they came from.
SUBJECT_REF = TextLimit("subject_ref", "subject reference", 200)
SOURCE_TYPE = TextLimit("source_type", "source type", 32)
SOURCE_REF = TextLimit("source_ref", "source reference", 500)
LEGAL_BASIS = TextLimit("legal_basis", "legal basis", 2000, "line-breaks")

# Accounts. A username's form (2 to 64 characters) is the store's rule; the cap is here so
# that the interfaces declare it too.
USERNAME = TextLimit("username", "username", 64)
DISPLAY_NAME = TextLimit("display_name", "display name", 200)
UNIT = TextLimit("unit", "unit", 200)
CERTIFICATE_REF = TextLimit("certificate_ref", "certificate reference", 200)
# Face models (`candor model add`): the name's form is the store's rule, the cap is here.
MODEL_NAME = TextLimit("model_name", "model name", 64)
MODEL_LICENCE = TextLimit("licence", "licence", 1000)
MODEL_SOURCE = TextLimit("model_source", "source", 1000)
# A directory group's distinguished name (`candor directory map`).
GROUP_DN = TextLimit("group_dn", "group DN", 1000)
# Long enough for any passphrase, short enough that hashing it is no denial of service.
PASSWORD = TextLimit("password", "password", 1024, "all-but-nul")

TEXT_LIMITS: tuple[TextLimit, ...] = (
    CASE_NUMBER,
    OFFENCE_CATEGORY,
    PURPOSE,
    REQUESTING_AGENCY,
    REQUESTING_UNIT,
    PROBE_KIND,
    AUTHORISATION_REF,
    EDITS,
    REASON,
    RATIONALE,
    SUBJECT_REF,
    SOURCE_TYPE,
    SOURCE_REF,
    LEGAL_BASIS,
    USERNAME,
    DISPLAY_NAME,
    UNIT,
    CERTIFICATE_REF,
    MODEL_NAME,
    MODEL_LICENCE,
    MODEL_SOURCE,
    PASSWORD,
)

# How many bytes of probes one process keeps decoded (`candor.workflow.context.ProbeCache`),
# counting each probe's pixels, file bytes and template. A count would not do: at the
# probe limits (25 million pixels, 30 MB of file) one probe holds about 105 MB, so the 64
# probes once kept could reach several gigabytes. 256 MiB holds a few 12-megapixel phone
# photos (about 40 MB each) or some hundred ordinary probes (a 1000 x 1000 photo: about
# 3 MB), enough to spare re-detecting a photo searched again soon.
PROBE_CACHE_BYTES = 256 * 1024 * 1024
