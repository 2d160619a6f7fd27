"""The example policies, read from the source tree, and facts a policy allows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from candor.policy import Policy, SearchFacts, parse_policy

REPO_ROOT = Path(__file__).resolve().parents[2]
# Read from the source tree rather than through example_policy_path, so these tests do not
# depend on how the package was installed (test_examples covers the installed copy).
EXAMPLES_DIR = REPO_ROOT / "src" / "candor" / "policy" / "examples"
EXAMPLE_NAMES = ("moratorium", "two-reviewers")


def example_text(name: str) -> str:
    return (EXAMPLES_DIR / f"{name}.toml").read_bytes().decode("utf-8")


def example(name: str) -> Policy:
    return parse_policy(example_text(name), file=f"{name}.toml")


def allowed_facts(policy: Policy, **changes: Any) -> SearchFacts:
    """A request every example policy allows, with `changes` applied."""
    facts = SearchFacts(
        kind="search",
        requester_roles=frozenset({"analyst"}),
        requester_disabled=False,
        certificate_valid=True,
        offence_category="homicide",
        purpose="investigative_lead",
        requesting_agency=policy.home_agency,
        requesting_unit="Major Crimes",
        probe_kind="still_photo",
        probe_edited=False,
        requested_top=10,
        earlier_search_id=None,
        searches_today=0,
        searches_last_30_days=0,
    )
    return replace(facts, **changes)
