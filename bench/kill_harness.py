"""Kill -9 at random: every operation that writes, killed at a random moment, then checked.

For each kill the harness starts one operation as a real `candor` process on a prepared
workspace, sends it SIGKILL after a random delay drawn over that operation's measured
duration (from the end of Python's start-up, which every run pays and where a kill
tests nothing, to the end of the run), then runs what a person would: `candor check`
(whose own start finishes the work the killed process left on record) and `candor
audit verify`. A kill is consistent when both pass:

- nothing committed is lost: `audit verify` reconciles every row the log says was
  committed (users, searches, candidates, gallery images, ...) with the tables;
- nothing is half-stored, and no orphan is left after the next start: `candor check`
  finds no file without its row, no row without its file, no file that is not sealed
  or does not open under its key, no data key nothing uses or that does not unwrap, an
  index holding exactly the database's templates, and no unfinished work on record.

The operations: enrolment (a batch of photos of a new subject), expunge (the second
admin's confirmation, which removes), a retention run, a search, a checkpoint, a
rotation of the audit signing key, and a rotation of the key-encryption key when this
Candor has `candor keys rotate --kek`. The retention run is the one operation that is
not the `candor` command itself but a Python process calling the same workflow function
with a clock 100 days ahead (the command has no clock option, and nothing is due today
in a workspace made minutes ago); it is killed the same way.

Seeded: every kill prints its seed, operation and delay; `--seed S --kills 1 --only OP`
replays one. Writes bench/results/<name>.json: per database and operation, kills and
inconsistencies (each with the seed, the delay and what was found).

    .venv/bin/python bench/kill_harness.py --database sqlite --kills 50
    .venv/bin/python bench/kill_harness.py --database postgres --kills 50
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import RESULTS_DIR, write_results

REPO = Path(__file__).resolve().parent.parent
FACES = Path(os.environ.get("CANDOR_FACES", REPO.parent / "shared" / "faces")) / "lfw-dev"
CANDOR = str(Path(sys.executable).with_name("candor"))
HOME_AGENCY = "Example Regional Investigation Unit"
BASE_SUBJECTS = 6
PHOTOS_PER_ENROLMENT = 4
RETENTION_DAYS_AHEAD = 100
COMMAND_TIMEOUT = 600.0
OPERATIONS = ("enrol", "expunge", "retention", "search", "checkpoint", "signing_key", "kek")


@dataclass
class Kill:
    """One kill and what was found after it."""

    seed: int
    operation: str
    delay_s: float
    finished_first: bool
    exit_code: int | None
    check: dict[str, Any] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Harness:
    """One prepared workspace and the operations killed on it."""

    def __init__(
        self,
        root: Path,
        database_url: str | None,
        *,
        operations: tuple[str, ...] = OPERATIONS,
        base_subjects: int = BASE_SUBJECTS,
        progress: bool = True,
        plaintext_ok: bool = False,
    ) -> None:
        self.root = root
        self.plaintext_ok = plaintext_ok
        self.wanted = operations
        self.base_subjects = base_subjects
        self.database_url = database_url
        self.progress = progress
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(root / "config"),
            "CANDOR_HOME": str(root / "ws"),
            "COLUMNS": "200",
        }
        # The workspace's KEK goes to the harness's own config folder, not the user's.
        os.environ["XDG_CONFIG_HOME"] = self.env["XDG_CONFIG_HOME"]
        self.home = root / "ws"
        self.tokens: dict[str, str] = {}
        self.people = _people()
        self.next_person = 0
        self.enrolled: list[str] = []
        self.expunged: set[str] = set()
        self.searches = 0
        self.kek_rotations = 0
        self.durations: dict[str, float] = {}
        self.startup_s = 0.0
        self.has_kek_rotation = False

    # -- preparing ------------------------------------------------------------------

    def prepare(self) -> None:
        """The agency (admins, analyst, auditor, the policy) and a small gallery."""
        from tests.agency import PASSWORD, make_agency, new_user, policy_file

        from candor.workflow import open_workflow
        from candor.workflow.accounts import login

        # Its own folder: make_agency writes the plain example to the root's.
        (self.root / "policy").mkdir()
        policy = policy_file(
            self.root / "policy",
            "two-reviewers",
            source_type="evaluation",
            per_user_per_day="per_user_per_day = 100000",
            per_user_per_30_days="per_user_per_30_days = 1000000",
        )
        agency = make_agency(self.root, purpose="evaluation", database_url=self.database_url)
        agency.set_policy(policy)
        agency.add_user(new_user("aud", "auditor"))
        agency.workflow.close()
        with open_workflow(self.home) as workflow:
            for name in ("admin1", "admin2", "ana", "aud"):
                self.tokens[name] = login(
                    workflow, name, PASSWORD, lifetime=timedelta(hours=72)
                ).token
        base = self.root / "base"
        for _ in range(self.base_subjects):
            ref, photos = self._new_person()
            folder = base / ref
            folder.mkdir(parents=True)
            for photo in photos:
                (folder / photo.name).symlink_to(photo)
        self.command("admin1", "enrol", str(base), "--from-folders", *_provenance())
        self.enrolled.extend(sorted(p.name for p in base.iterdir()))
        started = time.monotonic()
        self.command(None, "--help")
        self.startup_s = time.monotonic() - started
        rotate_help = self.command(None, "keys", "rotate", "--help").stdout
        self.has_kek_rotation = "--kek" in rotate_help

    def operations(self) -> list[str]:
        return [op for op in self.wanted if op != "kek" or self.has_kek_rotation]

    def calibrate(self) -> None:
        """Run each operation once to the end: its duration bounds the kill's delay."""
        for operation in self.operations():
            command = self.operation(operation)
            started = time.monotonic()
            completed = self.run_to_end(command)
            self.durations[operation] = time.monotonic() - started
            if completed.returncode != 0:
                raise RuntimeError(
                    f"{operation} failed unkilled ({completed.returncode}): "
                    f"{completed.stderr.strip()[-600:]}"
                )
            self._say(f"calibrated {operation}: {self.durations[operation]:.2f} s")

    # -- the operations -------------------------------------------------------------

    def operation(self, name: str) -> tuple[str | None, list[str]]:
        """(who is logged in, the command line) for one run of `name`; does what must be
        done first (an expungement's request by the first admin) unkilled."""
        if name == "enrol":
            ref, photos = self._new_person()
            self.enrolled.append(ref)
            args = ["enrol", *map(str, photos), "--subject", ref, "--workers", "1"]
            return "admin1", [CANDOR, *args, *_provenance()]
        if name == "expunge":
            # The first subject not yet expunged whose enrolment committed (a killed one
            # may not have): its request by the first admin, unkilled.
            for ref in [r for r in self.enrolled if r not in self.expunged]:
                self.expunged.add(ref)
                asked = self.command(
                    "admin1", "expunge", ref, "--reason", "kill harness", "--yes", "--json",
                    check=False,
                )  # fmt: skip
                if asked.returncode == 0:
                    break
                if "is enrolled" not in asked.stderr:
                    raise RuntimeError(f"candor expunge {ref} failed: {asked.stderr[-600:]}")
            else:
                raise RuntimeError("no enrolled subject is left to expunge")
            change_id = json.loads(asked.stdout)["change"]["id"]
            return "admin2", [CANDOR, "admin", "confirm", str(change_id), "--json"]
        if name == "retention":
            return "admin1", [sys.executable, __file__, "--retention-child", str(self.home)]
        if name == "search":
            self.searches += 1
            probe = self.people[(self.searches * 7) % len(self.people)][1][-1]
            return "ana", [
                CANDOR, "search", str(probe),
                "--case", f"KH-{self.searches:04d}",
                "--offence", "robbery",
                "--purpose", "investigative_lead",
                "--agency", HOME_AGENCY,
                "--unit", "Robbery",
                "--json",
            ]  # fmt: skip
        if name == "checkpoint":
            return "aud", [CANDOR, "audit", "checkpoint", "--json"]
        if name == "signing_key":
            return "admin1", [CANDOR, "keys", "rotate", "--yes", "--json"]
        if name == "kek":
            self.kek_rotations += 1
            new = self.root / "keks" / f"kek-{self.kek_rotations}"
            new.parent.mkdir(mode=0o700, exist_ok=True)
            return "admin1", [CANDOR, "keys", "rotate", "--kek", str(new), "--json"]
        raise ValueError(f"no operation {name!r}")

    # -- one kill -------------------------------------------------------------------

    def kill_one(self, seed: int, name: str) -> Kill:
        rng = random.Random(seed)
        user, command = self.operation(name)
        low = min(self.startup_s * 0.9, self.durations[name] * 0.5)
        delay = rng.uniform(low, max(low, self.durations[name]))
        self._log_in(user)
        process = subprocess.Popen(
            command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            process.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
            process.send_signal(signal.SIGKILL)
            process.wait()
        kill = Kill(seed, name, round(delay, 3), finished, process.returncode)
        self.judge(kill)
        return kill

    def judge(self, kill: Kill) -> None:
        """`candor check` (the next start) and `candor audit verify` after a kill.

        Both commands run in one process (`--judge-child`, through the CLI's own app, in
        that order), saving a Python start-up per kill: the check's opening of the
        workspace is the next start whose upkeep must leave nothing behind.
        """
        self._log_in("aud")
        judged = self.run_to_end(
            (None, [sys.executable, __file__, "--judge-child", str(self.home)]), log_in=False
        )
        outputs = _json_or(judged)
        kill.check = outputs.get("check") or outputs
        found = _check_findings(kill.check, plaintext_ok=self.plaintext_ok)
        if found:
            kill.problems.append(f"candor check: {'; '.join(found)}")
        kill.verify = outputs.get("verify") or {}
        if not kill.verify.get("ok"):
            shown = json.dumps(kill.verify)[:800] or judged.stderr.strip()[-800:]
            kill.problems.append(f"candor audit verify: {shown}")

    # -- helpers --------------------------------------------------------------------

    def command(
        self, user: str | None, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        self._log_in(user)
        completed = self.run_to_end((user, [CANDOR, *args]), log_in=False)
        if check and completed.returncode != 0:
            raise RuntimeError(
                f"candor {' '.join(args)} failed ({completed.returncode}): "
                f"{completed.stderr.strip()[-600:]}"
            )
        return completed

    def run_to_end(
        self, command: tuple[str | None, list[str]], *, log_in: bool = True
    ) -> subprocess.CompletedProcess[str]:
        user, line = command
        if log_in:
            self._log_in(user)
        return subprocess.run(
            line,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def _log_in(self, user: str | None) -> None:
        from candor.cli.accounts import save_token

        if user is not None:
            save_token(self.home, self.tokens[user])

    def _new_person(self) -> tuple[str, list[Path]]:
        name, photos = self.people[self.next_person]
        self.next_person += 1
        return f"KH-{self.next_person:04d}-{name[:20]}", photos[:PHOTOS_PER_ENROLMENT]

    def _say(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)


def _people() -> list[tuple[str, list[Path]]]:
    """LFW people with enough photos for one enrolment and a probe, in sorted order."""
    people = []
    for folder in sorted(FACES.iterdir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= PHOTOS_PER_ENROLMENT + 1:
            people.append((folder.name, photos))
    if not people:
        raise SystemExit(f"no labelled photos under {FACES} (set CANDOR_FACES)")
    return people


def _provenance() -> list[str]:
    return [
        "--source", "evaluation",
        "--source-ref", "kill harness",
        "--legal-basis", "research use under the LFW terms",
        "--collected", "2020-01-01",
        "--retain-until", "2029-12-01",
    ]  # fmt: skip


def _check_findings(report: dict[str, Any], *, plaintext_ok: bool) -> list[str]:
    """What `candor check --json` found, by name and count (empty: all agree).

    plaintext_ok: a Candor from before sealing writes plaintext files; its runs judge
    everything else.
    """
    left = report.get("left")
    if not isinstance(left, dict):
        return [f"no report: {json.dumps(report)[:400]}"]
    found = []
    for name, value in left.items():
        if name == "plaintext" and plaintext_ok:
            continue
        if value:
            shown = value if isinstance(value, int) else f"{len(value)}, first {value[0]}"
            found.append(f"{name}: {shown}")
    index = report.get("index") or {}
    if index.get("extra") or index.get("missing"):
        found.append(f"index: {index.get('extra')} extra, {index.get('missing')} missing")
    if index.get("problem"):
        found.append(f"index: {index['problem']}")
    audit = report.get("audit") or {}
    if not audit.get("ok"):
        found.append(f"audit: {audit.get('problem')}")
    return found


def _json_or(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        value = json.loads(completed.stdout)
    except ValueError:
        return {"stdout": completed.stdout[-400:]}
    return value if isinstance(value, dict) else {"value": value}


def judge_child(home: Path) -> int:
    """Run `candor check --json`, then `candor audit verify --json`, through the CLI's app;
    print both reports as one JSON object."""
    from typer.testing import CliRunner

    from candor.cli.app import app

    runner = CliRunner()
    reports: dict[str, Any] = {}
    for name, args in (("check", ["check", "--json"]), ("verify", ["audit", "verify", "--json"])):
        result = runner.invoke(app, [*args, "--home", str(home)])
        try:
            reports[name] = json.loads(result.stdout)
        except ValueError:
            reports[name] = {
                "exit_code": result.exit_code,
                "output": (result.stdout + result.stderr)[-800:],
                "exception": repr(result.exception),
            }
    print(json.dumps(reports))
    return 0


def retention_child(home: Path) -> int:
    """A retention run as the logged-in admin, with the clock RETENTION_DAYS_AHEAD ahead."""
    from candor.cli.session import read_token
    from candor.workflow import authenticate, open_workflow
    from candor.workflow.retention import run_retention

    with open_workflow(home) as workflow:
        actor = authenticate(workflow, read_token(home))
        run_retention(workflow, actor, now=workflow.now() + timedelta(days=RETENTION_DAYS_AHEAD))
    return 0


def run_harness(
    database: str,
    kills: int,
    seed: int,
    *,
    operations: tuple[str, ...] = OPERATIONS,
    base_subjects: int = BASE_SUBJECTS,
    progress: bool = True,
    plaintext_ok: bool = False,
    say: Callable[[str], None] = print,
    after_each: Callable[[dict[str, Any]], object] | None = None,
) -> dict[str, Any]:
    """Prepare a workspace on `database`, calibrate, then `kills` kills spread evenly over
    `operations` (the KEK's rotation only where this Candor has it); the summary.

    after_each: given the summary so far after every kill (a long run keeps its results
    file current, so that a run cut short still says what it found).
    """
    cluster = None
    with tempfile.TemporaryDirectory(prefix="candor-kill-") as folder:
        root = Path(folder)
        url = None
        if database == "postgres":
            from bench._postgres import BenchCluster

            cluster = BenchCluster().start()
            url = cluster.new_database()
        try:
            harness = Harness(
                root,
                url,
                operations=operations,
                base_subjects=base_subjects,
                progress=progress,
                plaintext_ok=plaintext_ok,
            )
            started = time.monotonic()
            harness.prepare()
            harness.calibrate()
            chosen = harness.operations()
            done: list[Kill] = []
            for number in range(kills):
                kill_seed = seed * 1_000_003 + number
                name = chosen[number % len(chosen)]
                kill = harness.kill_one(kill_seed, name)
                done.append(kill)
                state = "finished first" if kill.finished_first else "killed"
                verdict = "INCONSISTENT" if kill.problems else "ok"
                if progress:
                    say(
                        f"[{database}] kill {number + 1}/{kills} seed={kill_seed} op={name} "
                        f"delay={kill.delay_s:.2f}s {state}: {verdict}"
                    )
                    for problem in kill.problems:
                        say(f"    {problem}")
                if after_each is not None:
                    elapsed = time.monotonic() - started
                    after_each(_summary(database, harness, chosen, done, elapsed, kills))
            elapsed = time.monotonic() - started
        finally:
            if cluster is not None:
                cluster.stop()
    return _summary(database, harness, chosen, done, elapsed, kills)


def _summary(
    database: str,
    harness: Harness,
    chosen: list[str],
    done: list[Kill],
    elapsed: float,
    planned: int,
) -> dict[str, Any]:
    per_operation: dict[str, dict[str, Any]] = {}
    for name in chosen:
        mine = [kill for kill in done if kill.operation == name]
        per_operation[name] = {
            "kills": len(mine),
            "killed_mid_run": sum(not kill.finished_first for kill in mine),
            "finished_before_the_kill": sum(kill.finished_first for kill in mine),
            "inconsistencies": sum(bool(kill.problems) for kill in mine),
            "measured_duration_s": round(harness.durations[name], 3),
        }
    return {
        "database": database,
        "kills_planned": planned,
        "kills": len(done),
        "inconsistencies": sum(bool(kill.problems) for kill in done),
        "startup_s": round(harness.startup_s, 3),
        "elapsed_s": round(elapsed, 1),
        "plaintext_counted": not harness.plaintext_ok,
        "operations": per_operation,
        "failures": [asdict(kill) for kill in done if kill.problems],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--only", choices=OPERATIONS, help="kill only this operation")
    parser.add_argument("--results", default="kill_harness", help="bench/results/<name>.json")
    parser.add_argument(
        "--plaintext-ok",
        action="store_true",
        help="do not count plaintext files (a Candor from before sealing writes them)",
    )
    parser.add_argument("--base-subjects", type=int, default=BASE_SUBJECTS)
    parser.add_argument("--retention-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--judge-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.judge_child is not None:
        return judge_child(args.judge_child)
    if args.retention_child is not None:
        return retention_child(args.retention_child)
    load_before = os.getloadavg()[0]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    path = RESULTS_DIR / f"{args.results}.json"

    def record(summary: dict[str, Any]) -> Path:
        databases: dict[str, Any] = {}
        if path.is_file():
            databases = json.loads(path.read_text(encoding="utf-8")).get("databases", {})
        databases[args.database] = {
            **summary,
            "seed": args.seed,
            "commit": commit,
            "load_average_1min_before": round(load_before, 2),
            "load_average_1min_now": round(os.getloadavg()[0], 2),
        }
        return write_results(
            args.results,
            {
                "what": "kill -9 at a random moment of each operation, then candor check and "
                "candor audit verify; inconsistencies must be 0",
                "databases": databases,
            },
        )

    operations = (args.only,) if args.only else OPERATIONS
    summary = run_harness(
        args.database,
        args.kills,
        args.seed,
        operations=operations,
        base_subjects=args.base_subjects,
        plaintext_ok=args.plaintext_ok,
        after_each=record,
    )
    written = record(summary)
    print(f"wrote {written}: {summary['inconsistencies']} inconsistencies in {summary['kills']}")
    return 1 if summary["inconsistencies"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
