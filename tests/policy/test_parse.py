"""Policy validation: every error names the file, the dotted key and the problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from candor.policy import PolicyError, load_policy, parse_policy
from tests.policy.support import EXAMPLES_DIR, example_text

FILE = "moratorium.toml"


def edited(old: str, new: str, *, name: str = "moratorium") -> str:
    """The example's text with exactly one occurrence of `old` replaced."""
    text = example_text(name)
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def error_for(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, file=FILE)
    return caught.value


# (case id, old text, new text, dotted key, fragment of the problem)
ERRORS = [
    # unknown keys: a typo must not silently drop a rule
    (
        "unknown key",
        "per_user_per_day = 5",
        "per_user_per_dya = 5",
        "quotas.per_user_per_dya",
        "unknown key (did you mean 'per_user_per_day'?)",
    ),
    (
        "unknown table",
        "[quotas]",
        "[quota]",
        "quota",
        "unknown key (did you mean 'quotas'?)",
    ),
    (
        "unknown role",
        'analyst = ["search.request", "verify.request"]',
        'analyst = ["search.request", "verify.request"]\ninvestigator = []',
        "roles.investigator",
        "unknown key",
    ),
    # missing keys
    ("missing key", "per_user_per_day = 5\n", "", "quotas.per_user_per_day", "missing"),
    (
        "missing table",
        "[review]\n# One examiner, independent of the requester, releases a lead.\n"
        "reviewers_to_release = 1\n",
        "",
        "review",
        "missing; the table [review] is required",
    ),
    (
        "missing role",
        'auditor = ["audit.read", "audit.checkpoint", "reports.read"]\n',
        "",
        "roles.auditor",
        "missing",
    ),
    (
        "missing description",
        'description = "Illustrative department moratorium',
        'descriptio = "Illustrative department moratorium',
        "meta.descriptio",
        "unknown key",
    ),
    # wrong types name the expected type
    (
        "string for a whole number",
        "per_user_per_day = 5",
        'per_user_per_day = "5"',
        "quotas.per_user_per_day",
        "must be a whole number of at least 1, not the string '5'",
    ),
    (
        "boolean for a whole number",
        "per_user_per_day = 5",
        "per_user_per_day = true",
        "quotas.per_user_per_day",
        "must be a whole number of at least 1, not true",
    ),
    (
        "float for a whole number",
        "per_user_per_day = 5",
        "per_user_per_day = 5.0",
        "quotas.per_user_per_day",
        "must be a whole number of at least 1, not 5.0",
    ),
    (
        "string for a boolean",
        "outside_agencies_allowed = false",
        'outside_agencies_allowed = "no"',
        "agency.outside_agencies_allowed",
        "must be true or false, not the string 'no'",
    ),
    (
        "integer for a string",
        'version = "1"',
        "version = 1",
        "meta.version",
        "must be a string, not 1",
    ),
    (
        "string for a list",
        'analyst = ["search.request", "verify.request"]',
        'analyst = "search.request"',
        "roles.analyst",
        "must be a list of permissions, not the string 'search.request'",
    ),
    (
        "number in a list of names",
        'purposes = ["investigative_lead", "missing_person", "victim_identification"]',
        'purposes = ["investigative_lead", 7]',
        "search.purposes",
        "entry 2 must be a string, not 7",
    ),
    (
        "string for a fraction",
        "target_fpir = 0.01",
        'target_fpir = "0.01"',
        "search.target_fpir",
        "must be a number greater than 0 and at most 0.5, not the string '0.01'",
    ),
    (
        "table for a number",
        "window_days = 90",
        "window_days = { days = 90 }",
        "repeat.window_days",
        "not a table",
    ),
    # out of range
    (
        "the issue's example",
        "per_user_per_day = 5",
        "per_user_per_day = -3",
        "quotas.per_user_per_day",
        "must be a whole number of at least 1, not -3",
    ),
    (
        "zero quota",
        "per_user_per_30_days = 40",
        "per_user_per_30_days = 0",
        "quotas.per_user_per_30_days",
        "at least 1, not 0",
    ),
    (
        "candidate list too short",
        "candidate_list_length = 20",
        "candidate_list_length = 0",
        "search.candidate_list_length",
        "must be a whole number from 1 to 200, not 0",
    ),
    (
        "candidate list too long",
        "candidate_list_length = 20",
        "candidate_list_length = 201",
        "search.candidate_list_length",
        "from 1 to 200, not 201",
    ),
    ("fpir zero", "target_fpir = 0.01", "target_fpir = 0.0", "search.target_fpir", "not 0.0"),
    ("fpir integer zero", "target_fpir = 0.01", "target_fpir = 0", "search.target_fpir", "not 0"),
    ("fpir too high", "target_fpir = 0.01", "target_fpir = 0.51", "search.target_fpir", "0.51"),
    ("fpir negative", "target_fpir = 0.01", "target_fpir = -0.01", "search.target_fpir", "-0.01"),
    ("fpir nan", "target_fpir = 0.01", "target_fpir = nan", "search.target_fpir", "nan"),
    (
        "similarity one",
        "similarity = 0.95",
        "similarity = 1.0",
        "repeat.similarity",
        "must be a number greater than 0 and less than 1.0, not 1.0",
    ),
    ("similarity zero", "similarity = 0.95", "similarity = 0", "repeat.similarity", "not 0"),
    ("similarity above one", "similarity = 0.95", "similarity = 1.5", "repeat.similarity", "1.5"),
    ("window zero", "window_days = 90", "window_days = 0", "repeat.window_days", "not 0"),
    (
        "window beyond a century",
        "window_days = 90",
        "window_days = 36501",
        "repeat.window_days",
        "from 1 to 36500, not 36501",
    ),
    (
        "no reviewers",
        "reviewers_to_release = 1",
        "reviewers_to_release = 0",
        "review.reviewers_to_release",
        "at least 1, not 0",
    ),
    (
        "training switched off",
        "required = true",
        "required = false",
        "training.required",
        "must be true",
    ),
    (
        "probe kept longer than its search record",
        "probe_days = 90",
        "probe_days = 3000",
        "retention.probe_days",
        "must not exceed retention.search_record_days (2555), not 3000",
    ),
    (
        "gallery days zero",
        'gallery_max_days = "none"',
        "gallery_max_days = 0",
        "retention.gallery_max_days",
        "from 1 to 36500 or the string 'none', not 0",
    ),
    (
        "gallery days misspelt none",
        'gallery_max_days = "none"',
        'gallery_max_days = "unlimited"',
        "retention.gallery_max_days",
        "not the string 'unlimited'",
    ),
    # permissions and the invariants no policy can weaken
    (
        "auditor with search.request",
        'auditor = ["audit.read", "audit.checkpoint", "reports.read"]',
        'auditor = ["audit.read", "search.request"]',
        "roles.auditor",
        "only the read-only permissions audit.checkpoint, audit.read, reports.read, "
        "not search.request",
    ),
    (
        "auditor with gallery.expunge",
        'auditor = ["audit.read", "audit.checkpoint", "reports.read"]',
        'auditor = ["audit.read", "gallery.expunge"]',
        "roles.auditor",
        "not gallery.expunge",
    ),
    (
        "analyst with users.manage",
        'analyst = ["search.request", "verify.request"]',
        'analyst = ["search.request", "users.manage"]',
        "roles.analyst",
        "only admin may hold users.manage",
    ),
    (
        "supervisor with policy.manage",
        'supervisor = ["search.approve", "reports.read"]',
        'supervisor = ["search.approve", "policy.manage"]',
        "roles.supervisor",
        "only admin may hold policy.manage",
    ),
    (
        "examiner who reads the audit log",
        'examiner = ["candidate.review", "lead.release"]',
        'examiner = ["candidate.review", "lead.release", "audit.read"]',
        "roles.examiner",
        "a role that holds candidate.review may not also hold audit.read",
    ),
    (
        "reviewing supervisor who reads the audit log",
        'supervisor = ["search.approve", "reports.read"]',
        'supervisor = ["search.approve", "reports.read", "audit.read", "candidate.review"]',
        "roles.supervisor",
        "review is blind",
    ),
    (
        "auditor with users.manage",
        'auditor = ["audit.read", "audit.checkpoint", "reports.read"]',
        'auditor = ["users.manage"]',
        "roles.auditor",
        "read-only",
    ),
    (
        "unknown permission",
        'analyst = ["search.request", "verify.request"]',
        'analyst = ["search.requets", "verify.request"]',
        "roles.analyst",
        "entry 1 ('search.requets') is not one of",
    ),
    (
        "permission listed twice",
        'analyst = ["search.request", "verify.request"]',
        'analyst = ["search.request", "search.request"]',
        "roles.analyst",
        "entry 2 ('search.request') is listed twice",
    ),
    # vocabularies and allow lists
    (
        "unknown probe kind",
        'probe_kinds = ["still_photo", "video_still"]',
        'probe_kinds = ["still_photo", "photo"]',
        "search.probe_kinds",
        "entry 2 ('photo') is not one of still_photo, video_still, sketch",
    ),
    (
        "no probe kinds",
        'probe_kinds = ["still_photo", "video_still"]',
        "probe_kinds = []",
        "search.probe_kinds",
        "must list at least one entry",
    ),
    (
        "offence with capitals",
        '    "homicide",\n    "attempted_homicide",',
        '    "Homicide",\n    "attempted_homicide",',
        "search.offence_categories",
        "entry 1 ('Homicide') must be lower-case letters, digits and underscores",
    ),
    (
        "purpose twice",
        'purposes = ["investigative_lead", "missing_person", "victim_identification"]',
        'purposes = ["investigative_lead", "investigative_lead"]',
        "search.purposes",
        "listed twice",
    ),
    (
        "scraped gallery source",
        'source_types = ["booking_photo"]',
        'source_types = ["booking_photo", "social_media"]',
        "gallery.source_types",
        "entry 2 ('social_media') is not one of booking_photo",
    ),
    (
        "empty policy name",
        'name = "moratorium-example"',
        'name = ""',
        "meta.name",
        "must be a non-empty string",
    ),
    (
        "home agency with a trailing space",
        'home_agency = "Example City Police Department"',
        'home_agency = "Example City Police Department "',
        "agency.home_agency",
        "without leading or trailing spaces",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_error_names_file_key_and_problem(old: str, new: str, key: str, problem: str) -> None:
    error = error_for(edited(old, new))
    assert (error.file, error.key) == (FILE, key)
    assert problem in error.problem
    assert str(error) == f"{FILE}: {key}: {error.problem}"


def test_the_issues_example_message_exactly() -> None:
    error = error_for(edited("per_user_per_day = 5", "per_user_per_day = -3"))
    assert str(error) == (
        "moratorium.toml: quotas.per_user_per_day: must be a whole number of at least 1, not -3"
    )


def test_training_error_says_why() -> None:
    error = error_for(edited("required = true", "required = false"))
    assert "training certificate" in error.problem


def test_a_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('version = "1"', 'version = "1'),
        ("per_user_per_day = 5", "per_user_per_day 5"),
        ("[quotas]", "[quotas"),
        ("window_days = 90", "window_days = 90\nwindow_days = 91"),
    ],
)
def test_invalid_toml_names_the_file_and_line(old: str, new: str) -> None:
    text = edited(old, new)
    bad = new.splitlines()[-1]
    line = text.splitlines().index(bad) + 1
    error = error_for(text)
    assert error.line == line
    assert error.key == ""
    assert str(error).startswith(f"{FILE}: line {line}, column ")
    assert "invalid TOML" in str(error)


def test_invalid_toml_at_the_end_names_the_last_line() -> None:
    text = edited('gallery_max_days = "none"\n', "gallery_max_days = [\n")
    error = error_for(text)
    assert error.line == len(text.splitlines())


def test_top_level_value_that_should_be_a_table() -> None:
    text = edited("[review]\n", 'review = "two"\n[unused]\n')
    error = error_for(text)
    # "unused" is reported first: unknown tables are checked before the known ones.
    assert error.key == "unused"
    text = 'review = "two"\n' + example_text("moratorium").replace("[review]\n", "[reviewx]\n")
    assert error_for(text).key == "reviewx"


def test_a_known_table_given_as_a_value() -> None:
    text = "review = 2\n" + example_text("moratorium").replace(
        "[review]\n# One examiner, independent of the requester, releases a lead.\n"
        "reviewers_to_release = 1\n",
        "",
    )
    error = error_for(text)
    assert (error.key, error.problem) == ("review", "must be a table ([review]), not 2")


# Values at the edges of each range parse: the validators are not stricter than documented.
ACCEPTED = [
    ("candidate_list_length = 20", "candidate_list_length = 200"),
    ("candidate_list_length = 20", "candidate_list_length = 1"),
    ("target_fpir = 0.01", "target_fpir = 0.5"),
    ("target_fpir = 0.01", "target_fpir = 1e-6"),
    ("similarity = 0.95", "similarity = 0.999"),
    ("window_days = 90", "window_days = 1"),
    ("reviewers_to_release = 1", "reviewers_to_release = 5"),
    ('gallery_max_days = "none"', "gallery_max_days = 1"),
    ("probe_days = 90", "probe_days = 2555"),
]


@pytest.mark.parametrize(("old", "new"), ACCEPTED)
def test_edge_values_are_accepted(old: str, new: str) -> None:
    parse_policy(edited(old, new), file=FILE)


def test_a_role_may_be_granted_nothing() -> None:
    policy = parse_policy(
        edited('analyst = ["search.request", "verify.request"]', "analyst = []"), file=FILE
    )
    assert policy.permissions["analyst"] == frozenset()


def test_parsed_values() -> None:
    policy = parse_policy(
        edited("target_fpir = 0.01", "target_fpir = 0.5")
        .replace('gallery_max_days = "none"', "gallery_max_days = 30")
        .replace("allow_edited_probes = false", "allow_edited_probes = true"),
        file=FILE,
    )
    assert policy.target_fpir == 0.5
    assert isinstance(policy.target_fpir, float)
    assert policy.retention.gallery_max_days == 30
    assert policy.allow_edited_probes is True


def test_permissions_cannot_be_changed_after_parsing() -> None:
    policy = parse_policy(example_text("moratorium"), file=FILE)
    with pytest.raises(TypeError):
        policy.permissions["analyst"] = frozenset({"users.manage"})  # type: ignore[index]


# ---- the hash is the version ----


def test_sha256_is_of_the_file_bytes() -> None:
    path = EXAMPLES_DIR / "moratorium.toml"
    policy = load_policy(path)
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.source == path.read_text(encoding="utf-8")
    assert parse_policy(policy.source).sha256 == policy.sha256


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("# ILLUSTRATIVE EXAMPLE", "# Illustrative example"),
        ("per_user_per_day = 5", "per_user_per_day =  5"),
        ("per_user_per_day = 5", "per_user_per_day = 6"),
        ("window_days = 90\n", "window_days = 90 \n"),
    ],
)
def test_any_byte_changes_the_hash(old: str, new: str) -> None:
    original = parse_policy(example_text("moratorium"), file=FILE)
    changed = parse_policy(edited(old, new), file=FILE)
    assert changed.sha256 != original.sha256


def test_every_single_byte_flip_in_a_comment_changes_the_hash() -> None:
    text = example_text("moratorium")
    original = parse_policy(text).sha256
    first_line = text.splitlines()[0]
    hashes = set()
    for index in range(2, len(first_line)):
        flipped = text[:index] + ("x" if text[index] != "x" else "y") + text[index + 1 :]
        hashes.add(parse_policy(flipped).sha256)
    assert original not in hashes
    assert len(hashes) == len(first_line) - 2


def test_line_endings_change_the_hash(tmp_path: Path) -> None:
    text = example_text("moratorium")
    unix = tmp_path / "unix.toml"
    windows = tmp_path / "windows.toml"
    unix.write_bytes(text.encode("utf-8"))
    windows.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    assert load_policy(unix).sha256 != load_policy(windows).sha256
    assert load_policy(windows).sha256 == hashlib.sha256(windows.read_bytes()).hexdigest()


# ---- load_policy's own errors name the path ----


def test_load_names_the_path_in_validation_errors(tmp_path: Path) -> None:
    path = tmp_path / "local.toml"
    path.write_text(edited("per_user_per_day = 5", "per_user_per_day = -3"), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: quotas.per_user_per_day: ")


def test_load_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(PolicyError, match="cannot read the file") as caught:
        load_policy(path)
    assert caught.value.file == str(path)


def test_load_of_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(
        example_text("moratorium").replace("Example", "Ex\u00e4mple").encode("latin-1")
    )
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(path)


@pytest.mark.parametrize(
    "value",
    ["[" * 5000 + "]" * 5000, "{ a = " * 5000 + "1" + " }" * 5000],
    ids=["arrays", "inline tables"],
)
def test_values_nested_thousands_deep_are_a_policy_error(value: str) -> None:
    # tomllib recurses once per level: 5,000 levels used to escape as a RecursionError.
    error = error_for(f"{example_text('moratorium')}\n[extra]\nvalue = {value}\n")
    assert str(error).startswith(f"{FILE}: ")
    assert "nested too deeply" in error.problem


def test_keys_dotted_thousands_deep_are_refused_by_name() -> None:
    dotted = ".".join(["deeper"] * 5000)
    error = error_for(edited("per_user_per_day = 5", f"per_user_per_day.{dotted} = 5"))
    assert error.key == "quotas.per_user_per_day"
