"""Demographic groups for per-group figures: read from a file the evaluator supplies.

Candor never infers a person's group from a name or a photo. A groups file is UTF-8 text
with one `person<TAB>group` line per person (the person being the folder's name in the
labelled folder); blank lines and lines starting with `#` are ignored, and a first line
`person<TAB>group` is taken as a header. A person listed twice, a line without exactly
one tab, or a blank person or group is refused with the file and line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from candor.evaluation.bootstrap import (
    BoolArray,
    FloatArray,
    IntArray,
    percentile_interval,
    weighted_mean,
)

MIN_SEARCHES_PER_KIND = 30


class GroupsFileError(ValueError):
    """A groups file that cannot be read as `person<TAB>group` lines; str() is file:line: why."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        self.source = source
        self.line = line
        self.problem = problem
        super().__init__(f"{source}:{line}: {problem}")


@dataclass(frozen=True)
class GroupAssignment:
    """Each listed person's group, as the evaluator stated it."""

    source: str
    sha256: str
    groups: dict[str, str]


def parse_groups(text: str, *, source: str = "<groups>") -> GroupAssignment:
    """A GroupAssignment from the text of a groups file (see the module docstring)."""
    groups: dict[str, str] = {}
    first_line: dict[str, int] = {}
    seen_content = False
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise GroupsFileError(
                source, number, f"expected person<TAB>group, found {len(fields) - 1} tabs"
            )
        person, group = fields[0].strip(), fields[1].strip()
        if not seen_content and (person, group) == ("person", "group"):
            seen_content = True
            continue
        seen_content = True
        if not person:
            raise GroupsFileError(source, number, "the person is blank")
        if not group:
            raise GroupsFileError(source, number, f"the group of {person!r} is blank")
        if person in groups:
            raise GroupsFileError(
                source, number, f"{person!r} is already listed on line {first_line[person]}"
            )
        groups[person] = group
        first_line[person] = number
    if not groups:
        raise GroupsFileError(source, 1, "no person<TAB>group lines")
    return GroupAssignment(source, hashlib.sha256(text.encode()).hexdigest(), groups)


def read_groups_file(path: Path) -> GroupAssignment:
    """Parse a groups file; GroupsFileError (file:line) when it is not one."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise GroupsFileError(str(path), 0, f"cannot be read: {error.strerror}") from error
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise GroupsFileError(str(path), line, "is not UTF-8 text") from error
    assignment = parse_groups(text, source=str(path))
    return GroupAssignment(assignment.source, hashlib.sha256(data).hexdigest(), assignment.groups)


def _ratio(worst: float, best: float) -> float:
    return worst / best if best > 0 else float("nan")


def group_figures(
    assignment: GroupAssignment,
    people: list[str],
    mated_person: IntArray,
    mated_missed: BoolArray,
    nonmated_person: IntArray,
    nonmated_false: BoolArray,
    weights: IntArray,
    level: float,
) -> dict[str, Any]:
    """FNIR and FPIR per group at one threshold, with intervals and worst/best ratios.

    mated_missed / nonmated_false: per search, whether it missed its mate / returned a
    false candidate at the threshold. weights: (replicates, people) bootstrap draws.
    Only groups with at least MIN_SEARCHES_PER_KIND searches of each kind get figures.
    """
    index = {name: position for position, name in enumerate(people)}
    group_of = np.full(len(people), -1, dtype=np.int64)
    names = sorted(set(assignment.groups.values()))
    for person, group in assignment.groups.items():
        if person in index:
            group_of[index[person]] = names.index(group)
    unknown = sum(1 for person in assignment.groups if person not in index)
    ones = np.ones((1, len(people)), dtype=np.int64)
    reported: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    fnir_replicates: list[FloatArray] = []
    fpir_replicates: list[FloatArray] = []
    for number, group in enumerate(names):
        in_mated = group_of[mated_person] == number
        in_nonmated = group_of[nonmated_person] == number
        counts: dict[str, Any] = {
            "group": group,
            "people": int(np.count_nonzero(group_of == number)),
            "mated_searches": int(in_mated.sum()),
            "nonmated_searches": int(in_nonmated.sum()),
        }
        if min(int(in_mated.sum()), int(in_nonmated.sum())) < MIN_SEARCHES_PER_KIND:
            excluded.append(
                {
                    **counts,
                    "reason": (f"fewer than {MIN_SEARCHES_PER_KIND} mated or non-mated searches"),
                }
            )
            continue
        mated_weights = weights[:, mated_person[in_mated]]
        nonmated_weights = weights[:, nonmated_person[in_nonmated]]
        fnir = weighted_mean(mated_missed[in_mated], mated_weights)
        fpir = weighted_mean(nonmated_false[in_nonmated], nonmated_weights)
        fnir_replicates.append(fnir)
        fpir_replicates.append(fpir)
        fnir_ci, fnir_reason = percentile_interval(fnir, level)
        fpir_ci, fpir_reason = percentile_interval(fpir, level)
        reported.append(
            {
                **counts,
                "fnir": float(
                    weighted_mean(mated_missed[in_mated], ones[:, mated_person[in_mated]])[0]
                ),
                "fpir": float(
                    weighted_mean(
                        nonmated_false[in_nonmated], ones[:, nonmated_person[in_nonmated]]
                    )[0]
                ),
                "ci": {
                    "fnir": None if fnir_ci is None else list(fnir_ci),
                    "fpir": None if fpir_ci is None else list(fpir_ci),
                },
                "ci_null_reasons": {
                    key: reason
                    for key, reason in (("fnir", fnir_reason), ("fpir", fpir_reason))
                    if reason is not None
                },
            }
        )
    ratios: dict[str, Any] = {}
    for kind, replicates in (("fnir", fnir_replicates), ("fpir", fpir_replicates)):
        key = f"{kind}_ratio"
        if len(reported) < 2:
            ratios[key] = None
            ratios[f"{key}_reason"] = "fewer than two groups have figures"
            ratios[f"{key}_ci"] = None
            continue
        values = [group[kind] for group in reported]
        worst, best = max(values), min(values)
        ratio = _ratio(worst, best)
        ratios[key] = None if np.isnan(ratio) else ratio
        if best == 0:
            ratios[f"{key}_reason"] = f"the best group's {kind.upper()} is 0"
        stacked = np.vstack(replicates)
        with np.errstate(invalid="ignore", divide="ignore"):
            lowest = stacked.min(axis=0)
            per_replicate = np.where(lowest > 0, stacked.max(axis=0) / lowest, np.nan)
        interval, reason = percentile_interval(per_replicate, level)
        ratios[f"{key}_ci"] = None if interval is None else list(interval)
        if reason is not None:
            ratios[f"{key}_ci_reason"] = reason
    return {
        "source": assignment.source,
        "sha256": assignment.sha256,
        "listed_people": len(assignment.groups),
        "listed_people_not_in_dataset": unknown,
        "min_searches_per_kind": MIN_SEARCHES_PER_KIND,
        "groups": reported,
        "excluded": excluded,
        **ratios,
    }
