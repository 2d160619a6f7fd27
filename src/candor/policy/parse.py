"""Reading a policy file: TOML text in, a validated Policy or one PolicyError out.

Validation is strict on purpose. A policy only ever restricts what Candor may do, so a
key the parser does not know (a typo such as `per_user_per_dya`) would otherwise be a
rule that silently never applies; unknown keys, missing keys, wrong types and values out
of range are all errors naming the file, the dotted key and the problem.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn

from candor.policy.errors import PolicyError
from candor.policy.model import Policy, Quotas, RepeatRule, Retention
from candor.policy.roles import (
    ADMIN_ONLY_PERMISSIONS,
    AUDITOR_PERMISSIONS,
    GALLERY_SOURCE_TYPES,
    PERMISSIONS,
    PROBE_KINDS,
    ROLES,
)

EXAMPLE_POLICIES: tuple[str, ...] = ("moratorium", "two-reviewers")

# Each table of a policy file and its keys, in the order they are checked and documented.
SCHEMA: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "meta": ("name", "version", "description"),
        "agency": ("home_agency", "outside_agencies_allowed"),
        "roles": ROLES,
        "search": (
            "offence_categories",
            "purposes",
            "probe_kinds",
            "allow_edited_probes",
            "candidate_list_length",
            "target_fpir",
        ),
        "repeat": ("window_days", "similarity"),
        "quotas": ("per_user_per_day", "per_user_per_30_days"),
        "gallery": ("source_types",),
        "review": ("reviewers_to_release", "review_within_days", "resolve_disagreement_by"),
        "training": ("required",),
        "retention": ("probe_days", "search_record_days", "gallery_max_days"),
    }
)

# Keys a policy may leave out, with the value that stands when it does. A stored policy
# from an older release lacks them and must still parse to the rules it always meant.
OPTIONAL_KEYS: Mapping[str, object] = MappingProxyType(
    {"review.review_within_days": 7, "review.resolve_disagreement_by": None}
)

MAX_CANDIDATE_LIST_LENGTH = 200
MAX_TARGET_FPIR = 0.5
# A hundred years: beyond any retention rule, and small enough that date arithmetic on
# `now - days` cannot overflow.
MAX_DAYS = 36_500
NO_GALLERY_MAXIMUM = "none"

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_NAME_RULE = "lower-case letters, digits and underscores, starting with a letter"
_TOML_LOCATION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")


def example_policy_path(name: str) -> Path:
    """The file of a shipped example policy: "moratorium" or "two-reviewers"."""
    if name not in EXAMPLE_POLICIES:
        raise ValueError(
            f"no example policy named {name!r}; the examples are {', '.join(EXAMPLE_POLICIES)}"
        )
    resource = resources.files("candor.policy").joinpath("examples", f"{name}.toml")
    if not isinstance(resource, Path) or not resource.is_file():
        raise FileNotFoundError(
            f"example policy {name!r} is not installed as a file beside candor.policy "
            "(package data missing from this installation)"
        )
    return resource


def load_policy(path: Path) -> Policy:
    """Read and validate one policy file; its version is the sha256 of the exact bytes."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PolicyError(file, "", f"cannot read the file: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PolicyError(
            file, "", f"not UTF-8 text (byte {error.start} cannot be decoded)"
        ) from None
    return parse_policy(text, file=file)


def parse_policy(text: str, *, file: str = "<policy>") -> Policy:
    """Validate policy text; `file` names it in errors. sha256 is of the UTF-8 bytes."""
    document = _parse_toml(text, file)
    checker = _Checker(file)
    tables = checker.structure(document)
    meta, agency, roles, search = (
        tables["meta"],
        tables["agency"],
        tables["roles"],
        tables["search"],
    )
    repeat, quotas, retention = tables["repeat"], tables["quotas"], tables["retention"]
    probe_days = checker.days("retention.probe_days", retention["probe_days"])
    search_record_days = checker.days(
        "retention.search_record_days", retention["search_record_days"]
    )
    if probe_days > search_record_days:
        # A probe outliving the record of its search would be biometric data no longer
        # tied to a case, a requester or a decision.
        checker.fail(
            "retention.probe_days",
            f"must not exceed retention.search_record_days ({search_record_days}), "
            f"not {probe_days}: a probe may not outlive the record of its search",
        )
    return Policy(
        name=checker.label("meta.name", meta["name"]),
        version=checker.label("meta.version", meta["version"]),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        source=text,
        home_agency=checker.label("agency.home_agency", agency["home_agency"]),
        permissions=checker.permissions(roles),
        offence_categories=checker.names("search.offence_categories", search["offence_categories"]),
        purposes=checker.names("search.purposes", search["purposes"]),
        probe_kinds=checker.choices("search.probe_kinds", search["probe_kinds"], PROBE_KINDS),
        outside_agencies_allowed=checker.flag(
            "agency.outside_agencies_allowed", agency["outside_agencies_allowed"]
        ),
        repeat=RepeatRule(
            window_days=checker.days("repeat.window_days", repeat["window_days"]),
            similarity=checker.fraction(
                "repeat.similarity",
                repeat["similarity"],
                upper=1.0,
                upper_inclusive=False,
            ),
        ),
        quotas=Quotas(
            per_user_per_day=checker.whole("quotas.per_user_per_day", quotas["per_user_per_day"]),
            per_user_per_30_days=checker.whole(
                "quotas.per_user_per_30_days", quotas["per_user_per_30_days"]
            ),
        ),
        gallery_source_types=checker.choices(
            "gallery.source_types", tables["gallery"]["source_types"], GALLERY_SOURCE_TYPES
        ),
        candidate_list_length=checker.whole(
            "search.candidate_list_length",
            search["candidate_list_length"],
            maximum=MAX_CANDIDATE_LIST_LENGTH,
        ),
        target_fpir=checker.fraction(
            "search.target_fpir",
            search["target_fpir"],
            upper=MAX_TARGET_FPIR,
            upper_inclusive=True,
        ),
        reviewers_to_release=checker.whole(
            "review.reviewers_to_release", tables["review"]["reviewers_to_release"]
        ),
        review_within_days=checker.days(
            "review.review_within_days",
            tables["review"].get("review_within_days", OPTIONAL_KEYS["review.review_within_days"]),
        ),
        resolve_disagreement_by=checker.resolver(
            tables["review"].get("resolve_disagreement_by"), roles
        ),
        training_required=checker.training(tables["training"]["required"]),
        retention=Retention(
            probe_days=probe_days,
            search_record_days=search_record_days,
            gallery_max_days=checker.gallery_days(retention["gallery_max_days"]),
        ),
        description=checker.text("meta.description", meta["description"]),
        allow_edited_probes=checker.flag(
            "search.allow_edited_probes", search["allow_edited_probes"]
        ),
    )


def _parse_toml(text: str, file: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except RecursionError:
        # tomllib reads nested arrays and inline tables recursively, so a file nesting
        # them thousands deep exhausts the stack; no policy value nests beyond one list.
        raise PolicyError(
            file,
            "",
            "arrays or inline tables are nested too deeply to read; a policy's values "
            "are single values or lists of them",
        ) from None
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        located = _TOML_LOCATION.search(message)
        if located:
            line, column = int(located.group(1)), int(located.group(2))
            message = message[: located.start()]
        else:
            # tomllib reports "at end of document" for an unclosed value; that is the last line.
            line, column = max(1, len(text.splitlines())), 1
            message = _TOML_AT_END.sub("", message)
        raise PolicyError(
            file,
            "",
            f"line {line}, column {column}: invalid TOML: {message}",
            line=line,
            column=column,
        ) from None


def _describe(value: object) -> str:
    """A value as the policy's author wrote it, for "must be X, not Y" messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return f"the date/time {value.isoformat()}"
    return repr(value)


def _suggestion(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Checker:
    """Validators that raise PolicyError naming the file and dotted key."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, problem: str) -> NoReturn:
        raise PolicyError(self.file, key, problem)

    def structure(self, document: Mapping[str, object]) -> dict[str, dict[str, object]]:
        tables: dict[str, dict[str, object]] = {}
        for name in document:
            if name not in SCHEMA:
                self.fail(
                    name,
                    f"unknown key{_suggestion(name, tuple(SCHEMA))}; "
                    f"a policy has the tables {', '.join(SCHEMA)}",
                )
        for name, keys in SCHEMA.items():
            if name not in document:
                self.fail(name, f"missing; the table [{name}] is required")
            table = document[name]
            if not isinstance(table, dict):
                self.fail(name, f"must be a table ([{name}]), not {_describe(table)}")
            for key in table:
                if key not in keys:
                    self.fail(
                        f"{name}.{key}",
                        f"unknown key{_suggestion(key, keys)}; "
                        f"[{name}] has the keys {', '.join(keys)}",
                    )
            for key in keys:
                if key not in table and f"{name}.{key}" not in OPTIONAL_KEYS:
                    self.fail(f"{name}.{key}", "missing; this key is required")
            tables[name] = table
        return tables

    def text(self, key: str, value: object) -> str:
        if not isinstance(value, str):
            self.fail(key, f"must be a string, not {_describe(value)}")
        return value

    def label(self, key: str, value: object) -> str:
        text = self.text(key, value)
        if not text.strip() or text != text.strip():
            # Labels are compared exactly (the home agency above all), so stray spaces
            # would make every request look as if it came from somewhere else.
            self.fail(
                key,
                f"must be a non-empty string without leading or trailing spaces, "
                f"not {_describe(value)}",
            )
        return text

    def flag(self, key: str, value: object) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {_describe(value)}")
        return value

    def whole(
        self, key: str, value: object, *, minimum: int = 1, maximum: int | None = None
    ) -> int:
        expected = (
            f"a whole number of at least {minimum}"
            if maximum is None
            else f"a whole number from {minimum} to {maximum}"
        )
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            self.fail(key, f"must be {expected}, not {_describe(value)}")
        return value

    def days(self, key: str, value: object) -> int:
        return self.whole(key, value, maximum=MAX_DAYS)

    def fraction(self, key: str, value: object, *, upper: float, upper_inclusive: bool) -> float:
        bound = f"at most {upper}" if upper_inclusive else f"less than {upper}"
        expected = f"a number greater than 0 and {bound}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be {expected}, not {_describe(value)}")
        number = float(value)
        within = 0.0 < number <= upper if upper_inclusive else 0.0 < number < upper
        if not within:
            self.fail(key, f"must be {expected}, not {_describe(value)}")
        return number

    def resolver(self, value: object, roles: Mapping[str, object]) -> str | None:
        key = "review.resolve_disagreement_by"
        if value is None:
            return None
        if not isinstance(value, str) or value not in ROLES:
            self.fail(key, f"must be one of the roles {', '.join(ROLES)}, not {_describe(value)}")
        granted = roles.get(value)
        if not isinstance(granted, list) or "candidate.review" not in granted:
            # Whoever settles a disagreement reviews the candidate; a role that may not
            # review would make every disagreement final without saying so.
            self.fail(key, f"names {value}, which the policy does not give candidate.review")
        if value == "auditor":
            self.fail(key, "may not be auditor: an auditor reviews no candidates")
        return value

    def training(self, value: object) -> bool:
        key = "training.required"
        if self.flag(key, value) is not True:
            # docs/accountability.md fixes this in code: no valid training certificate means
            # no search, no verify and no review. The key exists so that the policy says so
            # to its readers; it cannot switch the rule off.
            self.fail(
                key,
                "must be true: Candor requires a valid training certificate for every "
                "search, verify and review whatever the policy says, not false",
            )
        return True

    def gallery_days(self, value: object) -> int | None:
        key = "retention.gallery_max_days"
        if value == NO_GALLERY_MAXIMUM and isinstance(value, str):
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
            self.fail(
                key,
                f"must be a whole number from 1 to {MAX_DAYS} or the string "
                f"{NO_GALLERY_MAXIMUM!r}, not {_describe(value)}",
            )
        return value

    def strings(self, key: str, value: object) -> list[str]:
        """A non-empty list of distinct strings (an empty list would allow nothing at all,
        which is never what a policy author meant to write)."""
        if not isinstance(value, list):
            self.fail(key, f"must be a list of strings, not {_describe(value)}")
        if not value:
            self.fail(key, "must list at least one entry, not an empty list")
        seen: set[str] = set()
        for position, item in enumerate(value, start=1):
            if not isinstance(item, str):
                self.fail(key, f"entry {position} must be a string, not {_describe(item)}")
            if item in seen:
                self.fail(key, f"entry {position} ({item!r}) is listed twice")
            seen.add(item)
        return [item for item in value if isinstance(item, str)]

    def names(self, key: str, value: object) -> frozenset[str]:
        items = self.strings(key, value)
        for position, item in enumerate(items, start=1):
            if not _NAME.fullmatch(item):
                self.fail(key, f"entry {position} ({item!r}) must be {_NAME_RULE}")
        return frozenset(items)

    def choices(self, key: str, value: object, known: Sequence[str]) -> frozenset[str]:
        items = self.strings(key, value)
        for position, item in enumerate(items, start=1):
            if item not in known:
                self.fail(
                    key,
                    f"entry {position} ({item!r}) is not one of {', '.join(known)}"
                    f"{_suggestion(item, known)}",
                )
        return frozenset(items)

    def permissions(self, roles: Mapping[str, object]) -> Mapping[str, frozenset[str]]:
        granted: dict[str, frozenset[str]] = {}
        for role in ROLES:
            key = f"roles.{role}"
            value = roles[role]
            if not isinstance(value, list):
                self.fail(key, f"must be a list of permissions, not {_describe(value)}")
            # An empty list is a deliberate "this role may do nothing"; unlike allow lists
            # of categories it cannot be a slip that widens anything.
            held = self.choices(key, value, PERMISSIONS) if value else frozenset[str]()
            if role == "auditor" and not held <= AUDITOR_PERMISSIONS:
                extra = ", ".join(p for p in PERMISSIONS if p in held - AUDITOR_PERMISSIONS)
                self.fail(
                    key,
                    "the auditor role may hold only the read-only permissions "
                    f"{', '.join(sorted(AUDITOR_PERMISSIONS))}, not {extra}: "
                    "an auditor must not take part in the work audited",
                )
            if {"candidate.review", "audit.read"} <= held:
                # The audit browser shows every verdict and rationale: a reviewer holding
                # it could read the others' before giving her own, and review is blind.
                self.fail(
                    key,
                    "a role that holds candidate.review may not also hold audit.read: "
                    "the audit log shows other examiners' verdicts, and review is blind",
                )
            reserved = held & ADMIN_ONLY_PERMISSIONS
            if role != "admin" and reserved:
                self.fail(
                    key,
                    f"only admin may hold {', '.join(sorted(reserved))}: whoever manages "
                    "users or the policy controls every other permission",
                )
            granted[role] = held
        return MappingProxyType(granted)
