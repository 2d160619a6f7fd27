"""The one error a policy file can cause, naming the file, the key and the problem."""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy file that cannot be used as written.

    str() is "<file>: <key>: <problem>", where key is the dotted TOML key
    ("quotas.per_user_per_day"). For problems of the whole file (unreadable, not UTF-8,
    invalid TOML) the key is empty and str() is "<file>: <problem>"; for invalid TOML the
    problem starts with the line and column, which are also in `line` and `column`.
    """

    def __init__(
        self,
        file: str,
        key: str,
        problem: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        self.line = line
        self.column = column
        parts = [file, key, problem] if key else [file, problem]
        super().__init__(": ".join(parts))
