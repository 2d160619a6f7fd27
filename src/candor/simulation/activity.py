"""Simulated activity: weeks of an agency's searches, run through the real workflow.

Only in a new `simulation` workspace. The simulation makes its own people (the one
place where users are made without a person at a keyboard: two admins bootstrapped,
everyone else requested by one admin and confirmed by the other, all audited as usual):
`staff` people doing casework (analysts in three units, examiners, supervisors, in
proportion; simulated_staff), plus the two admins and an auditor. With a password (`candor
simulate --password-file F`) every account gets it, stored as an argon2 hash like any
other, so a person can log in afterwards and look around; without one the password is
random and held in memory only, and nobody can log in later (the summary says which).

It puts a policy in force derived from the two-reviewers example, loads synthetic
subjects and enrols the two demo portraits for real, so that probes have true mates.
Then a simulated clock walks through `weeks` weeks: analysts ask for searches with
variants of the demo portraits (most allowed and run; some denied; repeats wait for a
supervisor, who approves or rejects them with a reason), examiners review most candidate
lists blind and release a lead when the policy's conditions hold, an examiner who gave
no verdict settles a disagreement (the policy's review.resolve_disagreement_by), and
requesters record what came of most released leads. Unless planting is turned off, five
analysts misuse the system, one kind each (PLANTED_KINDS; who is chosen by the seed, and
the summary's `planted` names them):

- volume: searches about five times as often as an ordinary analyst (and hits the
  daily quota);
- re_runs: goes back to the same probe within hours, again and again: each is a repeat
  under the policy, waiting for a supervisor, who mostly approves it with a reason;
- outside_agencies: three searches in four are for outside agencies (the policy lets
  outside agencies ask; other analysts do so for about one search in thirty);
- night: most of their searches between 20:00 and 02:00, any day of the week, in the
  workspace's time zone;
- expired_certificate: their training certificate lapses a quarter of the way through
  and is renewed two weeks later; they ask for searches in between (at least three),
  each denied by the policy for want of a valid certificate. The workflow runs no
  search on an expired certificate (training.required is always true, and an approved
  request is run only by a requester with a current one), so the stored record of this
  misuse is those denied requests, reason `no_certificate`, under their name.

Every step is a real workflow call with its audit entries, dated by the simulated
clock. The same seed and start date give the same activity. Nothing here compares
faces any other way than a real search does.
"""

from __future__ import annotations

import heapq
import itertools
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from candor.simulation.synthetic import load_synthetic_gallery
from candor.workflow import Provenance, example_policy_path
from candor.workflow.accounts import (
    Actor,
    NewUser,
    authenticate,
    bootstrap,
    check_password,
    confirm_change,
    login,
    request_policy_change,
    request_user,
    update_certificate,
)
from candor.workflow.audit_ops import checkpoint_now
from candor.workflow.audit_trail import CheckpointSchedule
from candor.workflow.context import Clock, ProbeCache, Workflow
from candor.workflow.demo_photos import demo_variants, probe_variants, save_photos
from candor.workflow.enrolment import EnrolmentRequest, EnrolmentStatus, enrol_files
from candor.workflow.errors import WorkflowError
from candor.workflow.governed import (
    CandidateView,
    RequestForm,
    RequestOutcome,
    decide_approval,
    record_verdict,
    release_lead,
    request_search,
    run_approved,
    view_candidates,
)
from candor.workflow.outcomes import record_lead_outcome
from candor.workflow.synthetic import (
    SIMULATION_PURPOSE,
    check_policy_text,
    record_simulation_step,
    simulated_activity,
)
from candor.workflow.worklists import workspace_state

SIMULATED = "SIMULATED"
HOME_AGENCY = "Example Regional Investigation Unit"
FOLDER = "simulation"
# Near-identical probes only: variants of one portrait score up to about 0.9994
# against each other, so a lower similarity would make almost every search a repeat.
REPEAT_SIMILARITY = "0.9995"
REPEAT_WINDOW_DAYS = 1
RESOLVER = "examiner"  # review.resolve_disagreement_by in the simulation's policy
# Candidates asked for per search. Examiners judge the first two (the true mate is
# among them); each view reads every candidate, so a longer list costs every review.
SEARCH_TOP = 5
# Hourly in simulated time: the default (every minute) would sign a checkpoint after
# nearly every simulated action, each over the whole log.
CHECKPOINT_SCHEDULE = CheckpointSchedule(every_entries=200, every_seconds=3600.0)
WORKDAY = (clock_time(8), clock_time(18))
MATES = {"collins": "SIM-DEMO-COLLINS", "hopper": "SIM-DEMO-HOPPER"}
OFFENCES = ("robbery", "aggravated_assault", "homicide", "sexual_offence", "kidnapping")
NOT_ALLOWED_OFFENCE = "shoplifting"


class SimulationRefusedError(WorkflowError):
    """The workspace is not a new simulation workspace."""


# Planted misuse, by kind: what each planted analyst does (the summary names who).
PLANTED_KINDS: dict[str, str] = {
    "volume": "searches several times as often as the unit's median analyst",
    "re_runs": "re-runs the same probes again and again, each repeat approved by a supervisor",
    "outside_agencies": "serves outside agencies most of the time",
    "night": "searches at night and at weekends (the workspace's time zone)",
    "expired_certificate": "kept asking for searches after their training certificate expired",
}
# An analyst's share of the searches relative to an ordinary one (who varies by a third).
# Above one for the planted habits that show only in a share of their searches.
PLANTED_WEIGHT = {
    "volume": 5.0,
    "re_runs": 2.0,
    "night": 1.5,
    "outside_agencies": 1.5,
    "expired_certificate": 1.2,
}
ANALYST_UNITS = ("Robbery", "Burglary", "Homicide")
EXAMINATION_UNIT = "Forensic Examination"
DEFAULT_STAFF = 19  # 11 analysts, 5 examiners, 3 supervisors, as before --staff
MIN_STAFF = 4  # an analyst, two examiners (two blind verdicts) and a supervisor
# Five planted analysts, at most two to a unit, each unit keeping an ordinary one.
MIN_STAFF_PLANTED = 15
MAX_STAFF = 500
# The draws that place the planted analysts: apart from the activity's, so that
# planting or not leaves the ordinary analysts' names alone.
_PLANT_STREAM = 7
OUTSIDE_AGENCIES = (
    "Neighbouring County Sheriff",
    "State Highway Patrol",
    "City Transit Police",
)
OUTSIDE_SHARE = {"outside_agencies": 0.75}
ORDINARY_OUTSIDE_SHARE = 0.03
# The expired certificate lapses a quarter of the way through and is renewed this long
# after; the analyst asks for searches in between (denied: no valid certificate).
RENEWAL_AFTER = timedelta(days=14)
TRIES_ON_EXPIRED = 3
APPROVAL_REASONS = (
    "new information in the case file justifies a second search",
    "a better still from the same footage; the first search found no lead",
    "the earlier candidates were excluded; the case officer asks again",
)
REJECTION_REASONS = (
    "no new information since the earlier search",
    "the same probe was searched yesterday; nothing in the case has changed",
)


@dataclass(frozen=True)
class Person:
    """A simulated member of staff."""

    username: str
    unit: str
    role: str
    weight: float = 1.0  # share of the searches, relative to an ordinary analyst
    habit: str | None = None  # the kind of planted misuse (PLANTED_KINDS), if any


ADMINS = (
    Person("records.admin1", "Records", "admin"),
    Person("records.admin2", "Records", "admin"),
)
AUDITOR = Person("standards.aud1", "Professional Standards", "auditor")


def staff_counts(staff: int) -> tuple[int, int, int]:
    """(analysts, examiners, supervisors) for `staff` people doing casework."""
    supervisors = max(1, round(staff * 0.16))
    examiners = max(2, round(staff * 0.26))
    return staff - examiners - supervisors, examiners, supervisors


def simulated_staff(
    staff: int = DEFAULT_STAFF, *, plant: bool = True, seed: int = 1
) -> tuple[Person, ...]:
    """The casework staff (analysts, examiners, supervisors) and the auditor.

    Analysts are spread over ANALYST_UNITS in turn; with `plant`, five of them misuse
    the system, one kind each (PLANTED_KINDS), chosen by `seed`, at most two to a unit.
    """
    analysts, examiners, supervisors = staff_counts(staff)
    by_unit: dict[str, list[str]] = {unit: [] for unit in ANALYST_UNITS}
    for number in range(analysts):
        unit = ANALYST_UNITS[number % len(ANALYST_UNITS)]
        by_unit[unit].append(f"{unit.lower()}.a{len(by_unit[unit]) + 1}")
    habits: dict[str, str] = {}
    if plant:
        rng = np.random.default_rng([seed, _PLANT_STREAM])
        units = [ANALYST_UNITS[int(i)] for i in rng.permutation(len(ANALYST_UNITS))]
        order = {unit: [by_unit[unit][int(i)] for i in rng.permutation(len(by_unit[unit]))]
                 for unit in ANALYST_UNITS}  # fmt: skip
        for number, kind in enumerate(PLANTED_KINDS):
            unit = units[number % len(units)]
            habits[order[unit][number // len(units)]] = kind
    people = [
        Person(name, unit, "analyst", PLANTED_WEIGHT.get(habits.get(name, ""), 1.0),
               habits.get(name))
        for unit in ANALYST_UNITS
        for name in by_unit[unit]
    ]  # fmt: skip
    people += [
        Person(f"forensic.e{number + 1}", EXAMINATION_UNIT, "examiner")
        for number in range(examiners)
    ]
    served: Counter[str] = Counter()
    for number in range(supervisors):
        unit = ANALYST_UNITS[number % len(ANALYST_UNITS)]
        served[unit] += 1
        people.append(Person(f"{unit.lower()}.s{served[unit]}", unit, "supervisor"))
    return (*people, AUDITOR)


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate. `start` is the first Monday (default: `weeks` weeks before this
    week's Monday, so the simulated weeks end before the present).

    staff: people doing casework (analysts, examiners, supervisors in proportion); the
        two admins and an auditor come on top.
    password: every simulated account's password, so people can log in afterwards;
        None: a random one held in memory only (nobody can log in later).
    plant: five analysts misuse the system (PLANTED_KINDS).
    """

    weeks: int = 8
    searches: int = 400
    seed: int = 1
    gallery: int = 2000
    probes: int | None = None
    start: date | None = None
    staff: int = DEFAULT_STAFF
    password: str | None = field(default=None, repr=False)
    plant: bool = True

    def checked(self) -> SimulationSettings:
        """The settings, or WorkflowError naming the first one out of range."""
        if self.weeks < 1:
            raise WorkflowError("simulate at least one week")
        if self.searches < 1:
            raise WorkflowError("simulate at least one search")
        if self.gallery < 1:
            raise WorkflowError("the synthetic gallery needs at least one subject")
        if self.probes is not None and self.probes < 2:
            raise WorkflowError("use at least two probe photos")
        least = MIN_STAFF_PLANTED if self.plant else MIN_STAFF
        if not least <= self.staff <= MAX_STAFF:
            planted = " with planted misuse" if self.plant else ""
            raise WorkflowError(
                f"staff: simulate {least} to {MAX_STAFF} people doing casework{planted}, "
                f"not {self.staff}"
            )
        if self.password is not None:
            check_password(self.password)
        return self


def read_password_file(path: Path) -> str:
    """The first line of `path`, stripped, once it passes the password rules; otherwise
    WorkflowError naming the file and what is wrong with it."""
    try:
        with path.open(encoding="utf-8") as handle:
            first = handle.readline().strip()
    except FileNotFoundError:
        raise WorkflowError(f"password file {path}: no such file") from None
    except IsADirectoryError:
        raise WorkflowError(f"password file {path}: a folder, not a file") from None
    except UnicodeDecodeError:
        raise WorkflowError(f"password file {path}: not UTF-8 text") from None
    except OSError as error:
        raise WorkflowError(f"password file {path}: cannot be read ({error.strerror})") from None
    if not first:
        raise WorkflowError(f"password file {path}: the first line is empty")
    try:
        check_password(first)
    except WorkflowError as error:
        raise WorkflowError(f"password file {path}: {error}") from None
    return first


NOBODY_LOGS_IN = (
    "nobody can log in: the accounts' password was random and held in memory only "
    "(give --password-file to set one)"
)
EVERYONE_LOGS_IN = "every simulated account logs in with the password from the password file"


@dataclass(frozen=True)
class SimulationSummary:
    """What the simulation did, counted from the workspace afterwards; all SIMULATED.

    planted: username -> kind of planted misuse (a key of PLANTED_KINDS); misbehaving:
    the same people with what they do, in words.
    """

    marker: str
    seed: int
    start: datetime
    end: datetime
    users: int
    staff: int
    units: tuple[str, ...]
    gallery_subjects: int
    probe_photos: int
    requests: int
    by_status: dict[str, int]
    denial_reasons: dict[str, int]
    approval_decisions: dict[str, int]
    candidate_lists: int
    lists_reviewed: int
    verdicts: dict[str, int]
    releases: int
    refused_steps: dict[str, int]
    requests_by_user: dict[str, int]
    planted: dict[str, str]
    misbehaving: dict[str, str]
    login: str
    audit_entries: int
    seconds: float


class SimulatedClock:
    """A clock that moves only forward, when the simulation moves it."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance_to(self, moment: datetime) -> None:
        """Move to `moment`, or stay put if it is in the past (no step goes back)."""
        self.moment = max(self.moment, moment)


Progress = Callable[[str, int, int], None]


@dataclass(order=True)
class _Event:
    moment: datetime
    order: int
    kind: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False)


@dataclass
class _Probe:
    path: Path
    mate: str  # the subject reference of the person the photo shows


def run_simulation(
    workflow: Workflow, settings: SimulationSettings, *, progress: Progress | None = None
) -> SimulationSummary:
    """Simulate `settings.weeks` weeks of activity in a new simulation workspace.

    progress: called with (stage, done, total) as stages advance.
    """
    settings = settings.checked()
    _check_workspace(workflow)
    began = time.perf_counter()
    zone = workflow.workspace.zone
    first_day = settings.start or _default_start(workflow, settings.weeks)
    if first_day.weekday() != 0:
        raise WorkflowError(f"the simulation starts on a Monday, not {first_day:%A %Y-%m-%d}")
    start = datetime.combine(first_day - timedelta(days=1), clock_time(9), tzinfo=zone)
    clock = SimulatedClock(start.astimezone(UTC))
    saved: tuple[Clock, CheckpointSchedule | None, ProbeCache] = (
        workflow.clock,
        workflow.checkpoint_schedule,
        workflow.probe_cache,
    )
    probe_count = settings.probes or _probe_count(settings)
    workflow.clock, workflow.checkpoint_schedule = clock, CHECKPOINT_SCHEDULE
    try:
        simulation = _Simulation(workflow, clock, settings, first_day, probe_count, progress)
        simulation.set_up()
        # Every probe stays detected for the whole run: the pool is reused all along, so
        # the cache's bound is what the pool holds (the pool's size is the settings').
        workflow.probe_cache = ProbeCache(simulation.probe_pool_bytes())
        simulation.run()
        return simulation.finish(time.perf_counter() - began)
    finally:
        workflow.clock, workflow.checkpoint_schedule, workflow.probe_cache = saved


def _check_workspace(workflow: Workflow) -> None:
    purpose = workflow.workspace.purpose
    if purpose != SIMULATION_PURPOSE:
        raise SimulationRefusedError(
            f"simulated activity may only enter a simulation workspace; this one is {purpose} "
            "(make one with `candor init --purpose simulation`)"
        )
    if workspace_state(workflow).has_users:
        raise SimulationRefusedError(
            "this simulation workspace already has users; the simulation makes its own, "
            "so run it on a new one made with `candor init --purpose simulation`"
        )


def _default_start(workflow: Workflow, weeks: int) -> date:
    today = workflow.today()
    this_monday = today - timedelta(days=today.weekday())
    return this_monday - timedelta(weeks=weeks)


# Per probe, beside its pixels and file: the template and the objects around them.
_PROBE_SLACK = 16 * 1024


def _probe_count(settings: SimulationSettings) -> int:
    # A fresh search takes a photo nobody searched in the repeat window (a day); enough
    # photos for a busy day, with room to spare, keep repeats to the ones meant.
    per_day = settings.searches / (5 * settings.weeks)
    return max(24, math.ceil(per_day * 1.5))


def simulation_policy(settings: SimulationSettings) -> str:
    """The two-reviewers example adapted to a simulation: its text, marked SIMULATED.

    Source type `simulation`; outside agencies may ask (as in the example: the unit is
    the region's examination service); a repeat means a near-identical probe within a
    day; quotas an ordinary analyst stays under and the heavy-volume one runs into; an
    examiner who gave no blind verdict settles a disagreement of the blind verdicts.
    """
    staff = simulated_staff(settings.staff, plant=settings.plant, seed=settings.seed)
    weight_total = sum(person.weight for person in staff if person.role == "analyst")
    ordinary_per_day = settings.searches / weight_total / (5 * settings.weeks)
    per_day = max(4, math.ceil(2.5 * ordinary_per_day))
    replacements = {
        "name": 'name = "simulation-two-reviewers"',
        "description": (
            'description = "SIMULATED: the two-reviewers example adapted for candor simulate."'
        ),
        "outside_agencies_allowed": "outside_agencies_allowed = true",
        "window_days": f"window_days = {REPEAT_WINDOW_DAYS}",
        "similarity": f"similarity = {REPEAT_SIMILARITY}",
        "per_user_per_day": f"per_user_per_day = {per_day}",
        # About 21 working days' worth of the daily quota.
        "per_user_per_30_days": f"per_user_per_30_days = {per_day * 20}",
        "source_types": f'source_types = ["{SIMULATION_PURPOSE}"]',
        "resolve_disagreement_by": f'resolve_disagreement_by = "{RESOLVER}"',
    }
    example = example_policy_path("two-reviewers").read_text()
    lines = [f"# {SIMULATED}: written by `candor simulate`; not any agency's policy."]
    for line in example.splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(replacements.get(key, line))
        if key == "reviewers_to_release" and "resolve_disagreement_by" not in example:
            lines.append(replacements["resolve_disagreement_by"])
    text = "\n".join(lines) + "\n"
    check_policy_text(text, file="simulation policy")
    return text


class _Simulation:
    def __init__(
        self,
        workflow: Workflow,
        clock: SimulatedClock,
        settings: SimulationSettings,
        first_day: date,
        probe_count: int,
        progress: Progress | None,
    ) -> None:
        self.workflow = workflow
        self.clock = clock
        self.settings = settings
        self.first_day = first_day
        self.last_day = first_day + timedelta(weeks=settings.weeks) - timedelta(days=3)
        self.zone = workflow.workspace.zone
        self.rng = np.random.default_rng(settings.seed)
        self.probe_count = probe_count
        self.progress = progress
        self.folder = workflow.workspace.home / FOLDER
        # Without a password file, one random password held in memory only.
        self.password = settings.password or secrets.token_urlsafe(24)
        self.tokens: dict[str, tuple[str, datetime]] = {}
        self.actors: dict[str, tuple[date, Actor]] = {}
        self.staff = simulated_staff(settings.staff, plant=settings.plant, seed=settings.seed)
        self.people = {person.username: person for person in (*ADMINS, *self.staff)}
        self.planted = {p.username: p.habit for p in self.staff if p.habit is not None}
        self.by_habit = {habit: username for username, habit in self.planted.items()}
        self.events: list[_Event] = []
        self.order = itertools.count()
        self.probes: list[_Probe] = []
        self.blurred: _Probe | None = None
        self.probe_used_at: dict[int, datetime] = {}
        self.last_search: dict[str, tuple[int, datetime]] = {}
        # The simulation's own record of who said what (the view an examiner gets is
        # blind to the others' verdicts until she has given hers).
        self.said: dict[tuple[int, int], list[str]] = {}
        self.requesters: dict[int, str] = {}
        self.resolver: str | None = None  # the policy's resolve_disagreement_by
        self.refused: Counter[str] = Counter()
        self.case_numbers = itertools.count(1)
        self.certificate_renewed = False
        # The planted certificate lapses (its last valid day) a quarter of the way through.
        self.lapse = first_day + timedelta(days=7 * settings.weeks // 4)
        self.tries_on_expired = 0

    # -- set-up ------------------------------------------------------------------------

    def set_up(self) -> None:
        workflow = self.workflow
        record_simulation_step(
            workflow,
            "simulation.started",
            {
                "simulated": True,
                "weeks": self.settings.weeks,
                "searches": self.settings.searches,
                "seed": self.settings.seed,
                "gallery": self.settings.gallery,
                "probes": self.probe_count,
                "staff": self.settings.staff,
                "planted": dict(sorted(self.planted.items())),
                "first_day": self.first_day.isoformat(),
            },
        )
        first, second = (self._new_user(person) for person in ADMINS)
        bootstrap(workflow, first, second)
        self._policy()
        for person in self.staff:
            self._tick(minutes=2)
            change = request_user(workflow, self.actor(ADMINS[0].username), self._new_user(person))
            confirm_change(workflow, self.actor(ADMINS[1].username), change.id)
        self._gallery()
        self._probes()
        self._schedule_searches()

    def _new_user(self, person: Person) -> NewUser:
        expires = self.first_day + timedelta(days=730)
        if person.habit == "expired_certificate":
            expires = self.lapse
        return NewUser(
            username=person.username,
            unit=person.unit,
            certificate_ref=f"SIM-FRT-{person.username}",
            certificate_expires=expires,
            password=self.password,
            display_name=f"{person.username} (simulated)",
            roles=(person.role,),
        )

    def _policy(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "simulation-policy.toml"
        path.write_text(simulation_policy(self.settings))
        change = request_policy_change(self.workflow, self.actor(ADMINS[0].username), path)
        confirm_change(self.workflow, self.actor(ADMINS[1].username), change.id)
        self.resolver = RESOLVER

    def _gallery(self) -> None:
        admin = self.actor(ADMINS[0].username)
        self._tick(minutes=10)
        load_synthetic_gallery(
            self.workflow,
            admin,
            subjects=self.settings.gallery,
            seed=self.settings.seed,
            prefix="SIM-SYN",
            progress=None
            if self.progress is None
            else lambda done, total: self._report("gallery", done, total),
        )
        portraits = save_photos(demo_variants(), self.folder / "portraits")
        today = self.workflow.today()
        provenance = Provenance(
            source_type=SIMULATION_PURPOSE,
            source_ref="public-domain portraits shipped in scikit-image and matplotlib",
            legal_basis="public domain (US government works); simulation only",
            collected_on=today,
            retain_until=today + timedelta(days=3650),
        )
        summary = enrol_files(
            self.workflow,
            admin,
            [
                EnrolmentRequest(portraits["collins.png"], MATES["collins"]),
                EnrolmentRequest(portraits["hopper.jpg"], MATES["hopper"]),
            ],
            provenance,
            workers=1,
        )
        if summary.count(EnrolmentStatus.ENROLLED) != 2:
            reasons = [outcome.reason for outcome in summary.outcomes]
            raise WorkflowError(f"the demo portraits could not be enrolled: {reasons}")
        self.blurred = _Probe(portraits["hopper-blurred.png"], MATES["hopper"])

    def _probes(self) -> None:
        pictures = probe_variants(self.probe_count, seed=self.settings.seed)
        paths = save_photos(pictures, self.folder / "probes")
        self.probes = [_Probe(path, MATES[name.split("-")[0]]) for name, path in paths.items()]

    def probe_pool_bytes(self) -> int:
        """What the probe cache counts for every probe of the run held at once
        (`candor.workflow.context.probe_bytes`), read from the files' headers."""
        pool = [*self.probes, *([self.blurred] if self.blurred is not None else [])]
        total = 0
        for probe in pool:
            with Image.open(probe.path) as picture:
                width, height = picture.size
            # RGB pixels, the file's bytes, and room for the template and the objects.
            total += 3 * width * height + probe.path.stat().st_size + _PROBE_SLACK
        return total

    # -- who does what, when ---------------------------------------------------------------

    def _schedule_searches(self) -> None:
        analysts = [person for person in self.staff if person.role == "analyst"]
        weights = np.array([person.weight for person in analysts])
        # Ordinary analysts differ too: each one's share varies by up to a third.
        weights = weights * self.rng.uniform(0.7, 1.3, size=len(weights))
        chosen = self.rng.choice(
            len(analysts), size=self.settings.searches, p=weights / weights.sum()
        )
        re_runs: list[datetime] = []
        for index in chosen:
            person = analysts[int(index)]
            if person.habit == "re_runs" and re_runs and self.rng.random() < 0.6:
                # Back to a probe within hours of an earlier search of it: within the
                # policy's repeat window, so each is a repeat a supervisor must approve.
                earlier = re_runs[int(self.rng.integers(0, len(re_runs)))]
                moment = self._working_moment_after(earlier, float(self.rng.uniform(30, 240)))
            else:
                moment = self._search_moment(person)
            if person.habit == "re_runs":
                re_runs.append(moment)
            self._push(moment, "search", {"user": person.username})

    def _search_moment(self, person: Person) -> datetime:
        weeks = self.settings.weeks
        lapsed = self._lapsed_days()
        if person.habit == "night" and self.rng.random() < 0.6:
            day = self.first_day + timedelta(days=int(self.rng.integers(0, 7 * weeks)))
            minutes = int(self.rng.integers(20 * 60, 26 * 60))  # 20:00 to 02:00
        elif person.habit == "expired_certificate" and (
            lapsed and (self.tries_on_expired < TRIES_ON_EXPIRED or self.rng.random() < 0.2)
        ):
            # Asks on after the certificate lapsed: the first few of their searches
            # surely fall between the lapse and the renewal, so that some always do.
            self.tries_on_expired += 1
            day = lapsed[int(self.rng.integers(0, len(lapsed)))]
            minutes = int(self.rng.integers(8 * 60 + 15, 17 * 60 + 45))
        else:
            day = self.first_day + timedelta(
                weeks=int(self.rng.integers(0, weeks)), days=int(self.rng.integers(0, 5))
            )
            minutes = int(self.rng.integers(8 * 60 + 15, 17 * 60 + 45))
        local = datetime.combine(day, clock_time(0), tzinfo=self.zone) + timedelta(
            minutes=minutes, seconds=int(self.rng.integers(0, 60))
        )
        return local.astimezone(UTC)

    def _lapsed_days(self) -> list[date]:
        """The working days after the planted certificate's last valid day, before it is
        renewed and within the simulated weeks."""
        days = (self.lapse + timedelta(days=n) for n in range(1, RENEWAL_AFTER.days))
        return [day for day in days if day.weekday() < 5 and day <= self.last_day]

    def _working_moment_after(self, moment: datetime, minutes: float) -> datetime:
        """`minutes` of working time after `moment` (weekdays, 08:00 to 18:00 local)."""
        local = moment.astimezone(self.zone)
        remaining = timedelta(minutes=minutes)
        while True:
            start = datetime.combine(local.date(), WORKDAY[0], tzinfo=self.zone)
            end = datetime.combine(local.date(), WORKDAY[1], tzinfo=self.zone)
            if local.weekday() >= 5 or local >= end:
                local = datetime.combine(
                    local.date() + timedelta(days=1), WORKDAY[0], tzinfo=self.zone
                )
                continue
            local = max(local, start)
            if local + remaining <= end:
                return (local + remaining).astimezone(UTC)
            remaining -= end - local
            local = end

    def _push(self, moment: datetime, kind: str, payload: dict[str, Any]) -> None:
        heapq.heappush(self.events, _Event(moment, next(self.order), kind, payload))

    def _tick(self, *, minutes: float) -> None:
        self.clock.advance_to(self.clock.moment + timedelta(minutes=minutes))

    def _with_role(self, role: str) -> list[str]:
        return [person.username for person in self.staff if person.role == role]

    def actor(self, username: str) -> Actor:
        """The person, logged in: a new login when their week-long session has run out.

        The actor read through the session is kept for the rest of the simulated day, as
        a page request keeps it (its certificate's validity changes only with the date;
        a renewal drops it).
        """
        now = self.workflow.now()
        today = self.workflow.today()
        token, expires = self.tokens.get(username, ("", now))
        if expires <= now + timedelta(minutes=1):
            result = login(self.workflow, username, self.password, lifetime=timedelta(days=7))
            token, expires = result.token, result.expires_at
            self.tokens[username] = (token, expires)
        elif username in self.actors and self.actors[username][0] == today:
            return self.actors[username][1]
        actor = authenticate(self.workflow, token)
        self.actors[username] = (today, actor)
        return actor

    # -- the weeks -------------------------------------------------------------------------

    def run(self) -> None:
        # The Monday after the last week, at the start of work: the night owl's Sunday
        # night runs past midnight, and their last searches count too.
        end = datetime.combine(
            self.last_day + timedelta(days=3), WORKDAY[0], tzinfo=self.zone
        ).astimezone(UTC)
        total = self.settings.searches
        done = 0
        while self.events:
            event = heapq.heappop(self.events)
            if event.moment >= end:
                continue  # left undone when the simulated period ends, as work is
            self.clock.advance_to(event.moment)
            self._maybe_renew_certificate()
            try:
                getattr(self, f"_on_{event.kind}")(**event.payload)
            except WorkflowError as error:
                self.refused[f"{event.kind}: {type(error).__name__}"] += 1
            if event.kind == "search":
                done += 1
                if done % 25 == 0 or done == total:
                    self._report("searches", done, total)

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def _maybe_renew_certificate(self) -> None:
        expired = self.by_habit.get("expired_certificate")
        if expired is None or self.certificate_renewed:
            return
        if self.workflow.today() < self.lapse + RENEWAL_AFTER:
            return
        if not WORKDAY[0] <= self.clock.moment.astimezone(self.zone).time() < WORKDAY[1]:
            return
        self.certificate_renewed = True
        self.actors.pop(expired, None)
        update_certificate(
            self.workflow,
            self.actor(ADMINS[0].username),
            expired,
            f"SIM-FRT-{expired}-renewed",
            self.workflow.today() + timedelta(days=730),
        )

    def _on_search(self, user: str) -> None:
        person = self.people[user]
        actor = self.actor(user)
        now = self.workflow.now()
        agency, offence, edited = HOME_AGENCY, str(self.rng.choice(OFFENCES)), None
        roll = self.rng.random()
        window = timedelta(days=REPEAT_WINDOW_DAYS)
        last = self.last_search.get(user)
        probe_index: int | None = None
        if person.habit == "re_runs" and last is not None and now - last[1] < window:
            if roll < 0.9:
                probe_index = last[0]
        elif roll < 0.03:
            # Now and then anyone searches a photo searched lately (a repeat).
            recent = sorted(i for i, at in self.probe_used_at.items() if now - at < window)
            probe_index = int(self.rng.choice(recent)) if recent else None
        if probe_index is None:
            probe_index = self._fresh_probe(now, window)
        probe = self.probes[probe_index]
        outside_share = OUTSIDE_SHARE.get(person.habit or "", ORDINARY_OUTSIDE_SHARE)
        if self.rng.random() < outside_share:
            agency = OUTSIDE_AGENCIES[int(self.rng.integers(0, len(OUTSIDE_AGENCIES)))]
        if self.rng.random() < 0.02:
            offence = NOT_ALLOWED_OFFENCE
        if self.rng.random() < 0.01 and self.blurred is not None:
            probe = self.blurred
        if self.rng.random() < 0.1:
            edited = "cropped to the face"
        form = RequestForm(
            case_number=f"SIM-{self.workflow.today().year}-{next(self.case_numbers):06d}",
            offence_category=offence,
            purpose="investigative_lead",
            requesting_agency=agency,
            requesting_unit=person.unit,
            probe_kind="still_photo",
            edits=edited,
        )
        outcome = request_search(self.workflow, actor, probe.path, form, top=SEARCH_TOP)
        self.probe_used_at[probe_index] = now
        self.last_search[user] = (probe_index, now)
        self._after(outcome, user, probe.mate)

    def _fresh_probe(self, now: datetime, window: timedelta) -> int:
        """A photo nobody searched within the repeat window (so not a repeat), else the
        one searched longest ago."""
        # A margin over the window: an hour's slack keeps a search just past it fresh.
        stale = now - window - timedelta(hours=1)
        fresh = [i for i in range(len(self.probes)) if self.probe_used_at.get(i, stale) <= stale]
        if not fresh:
            return min(range(len(self.probes)), key=lambda i: self.probe_used_at[i])
        return int(fresh[int(self.rng.integers(0, len(fresh)))])

    def _after(self, outcome: RequestOutcome, requester: str, mate: str) -> None:
        now = self.workflow.now()
        self.requesters[outcome.search_id] = requester
        if outcome.status == "pending_approval":
            delay = float(self.rng.uniform(20, 240))
            self._push(
                self._working_moment_after(now, delay),
                "approval",
                {"search_id": outcome.search_id, "requester": requester, "mate": mate},
            )
        elif outcome.status == "completed" and self.rng.random() < 0.85:
            # Most lists get two examiners; some only one; the rest are never reviewed.
            examiners = self._with_role("examiner")
            reviewers = self.rng.choice(len(examiners), size=2, replace=False)
            count = 2 if self.rng.random() < 0.85 else 1
            for index in reviewers[:count]:
                delay = float(self.rng.uniform(30, 3 * 600))
                self._push(
                    self._working_moment_after(now, delay),
                    "review",
                    {
                        "search_id": outcome.search_id,
                        "examiner": examiners[int(index)],
                        "mate": mate,
                    },
                )

    def _on_approval(self, search_id: int, requester: str, mate: str) -> None:
        supervisors = self._with_role("supervisor")
        supervisor = supervisors[int(self.rng.integers(0, len(supervisors)))]
        approve = self.rng.random() < 0.75
        reasons = APPROVAL_REASONS if approve else REJECTION_REASONS
        reason = reasons[int(self.rng.integers(0, len(reasons)))]
        outcome = decide_approval(
            self.workflow, self.actor(supervisor), search_id, approve=approve, reason=reason
        )
        if outcome.status == "approved" and self.rng.random() < 0.9:
            self._push(
                self._working_moment_after(self.workflow.now(), float(self.rng.uniform(5, 90))),
                "run",
                {"search_id": search_id, "requester": requester, "mate": mate},
            )

    def _on_run(self, search_id: int, requester: str, mate: str) -> None:
        outcome = run_approved(self.workflow, self.actor(requester), search_id)
        self._after(outcome, requester, mate)

    def _on_review(self, search_id: int, examiner: str, mate: str) -> None:
        actor = self.actor(examiner)
        # View, verdicts and release share the event's moment: steps that moved the clock
        # on inside an event would add up over thousands of reviews and drag every later
        # event's time past its own.
        review = view_candidates(self.workflow, actor, search_id)
        for candidate in review.candidates[:2]:
            if candidate.released or candidate.settled or candidate.own_verdict is not None:
                continue
            matches = candidate.subject_ref == mate
            if matches:
                verdict = "possible_match" if self.rng.random() < 0.92 else "inconclusive"
                rationale = "ear shape, hairline and nose agree; no disagreeing feature"
            else:
                verdict = "not_a_match" if self.rng.random() < 0.95 else "inconclusive"
                rationale = "face shape and features differ from the probe"
            if matches and self.rng.random() < 0.06:
                # Now and then one examiner rules out the true mate: a disagreement.
                verdict, rationale = "not_a_match", "the nose bridge and chin differ"
            view = record_verdict(
                self.workflow, actor, search_id, candidate.rank, verdict, rationale
            )
            said = self.said.setdefault((search_id, candidate.rank), [])
            said.append(examiner)
            self._after_verdict(search_id, candidate.rank, view, examiner, matches)

    def _after_verdict(
        self, search_id: int, rank: int, view: CandidateView, examiner: str, matches: bool
    ) -> None:
        """Release when the policy's conditions hold (most of the time); a disagreement of
        the blind verdicts goes to an examiner who gave none, to settle."""
        said = self.said[(search_id, rank)]
        if view.release_ready:
            if self.rng.random() < 0.8:
                release_lead(
                    self.workflow,
                    self.actor(examiner),
                    search_id,
                    rank,
                    "the policy's conditions hold: investigative lead only",
                )
                self._push_outcome(search_id, rank, matches)
            return
        # After her own verdict she sees the others': a possible_match against a
        # not_a_match is a disagreement (policy.release.awaits_resolution's rule), and
        # only then is a resolving examiner sent.
        blind = {v["verdict"] for v in view.verdicts if v.get("kind") != "resolving"}
        disagree = {"possible_match", "not_a_match"} <= blind
        others = [e for e in self._with_role("examiner") if e not in said]
        if self.resolver and disagree and len(said) >= 2 and others and not view.settled:
            settler = others[int(self.rng.integers(0, len(others)))]
            self._push(
                self._working_moment_after(self.workflow.now(), float(self.rng.uniform(60, 900))),
                "resolve",
                {"search_id": search_id, "rank": rank, "examiner": settler, "matches": matches},
            )

    def _on_resolve(self, search_id: int, rank: int, examiner: str, matches: bool) -> None:
        verdict = "possible_match" if matches else "not_a_match"
        rationale = (
            "settling the disagreement: the ear and hairline agree, as the first said"
            if matches
            else "settling the disagreement: the face shape differs"
        )
        actor = self.actor(examiner)
        view = record_verdict(self.workflow, actor, search_id, rank, verdict, rationale)
        self.said.setdefault((search_id, rank), []).append(examiner)
        if view.release_ready:
            release_lead(
                self.workflow,
                actor,
                search_id,
                rank,
                "a resolving examiner settled the disagreement: investigative lead only",
            )
            self._push_outcome(search_id, rank, matches)

    def _push_outcome(self, search_id: int, rank: int, matches: bool) -> None:
        """The requester says later what came of a released lead (some never do)."""
        if self.rng.random() < 0.15:
            return
        requester = self.requesters[search_id]
        days = float(self.rng.uniform(1, 10))  # working days, of ten hours
        self._push(
            self._working_moment_after(self.workflow.now(), days * 600),
            "outcome",
            {"search_id": search_id, "rank": rank, "requester": requester, "matches": matches},
        )

    def _on_outcome(self, search_id: int, rank: int, requester: str, matches: bool) -> None:
        roll = self.rng.random()
        if matches:
            outcome, note = (
                ("confirmed_by_other_evidence", "fingerprints from the scene confirm it")
                if roll < 0.6
                else ("pending", "enquiries continue")
                if roll < 0.85
                else ("no_action", "the case was closed before the lead was followed")
            )
        else:
            outcome, note = (
                ("excluded", "the person was elsewhere at the time (alibi checked)")
                if roll < 0.8
                else ("no_action", "not followed: other evidence pointed elsewhere")
            )
        record_lead_outcome(self.workflow, self.actor(requester), search_id, rank, outcome, note)

    # -- the end ---------------------------------------------------------------------------

    def finish(self, seconds: float) -> SimulationSummary:
        workflow = self.workflow
        counts = simulated_activity(workflow)
        statuses = Counter(counts.by_status)
        denials: Counter[str] = Counter()
        for decision in counts.denied_decisions:
            denials.update(reason["code"] for reason in decision.get("reasons", []))
        approvals = Counter(counts.approval_decisions)
        verdicts = Counter(counts.verdicts)
        reviewed, lists = counts.lists_reviewed, counts.candidate_lists
        releases, by_user = counts.releases, counts.requests_by_user
        summary_counts: dict[str, object] = {
            "simulated": True,
            "requests": sum(statuses.values()),
            "by_status": dict(sorted(statuses.items())),
            "denial_reasons": dict(sorted(denials.items())),
            "approval_decisions": dict(sorted(approvals.items())),
            "verdicts": dict(sorted(verdicts.items())),
            "releases": releases,
        }
        # The auditor signs the log as the period ends: reports count up to the latest
        # signed checkpoint, so a report read now covers the whole simulation. (Logged
        # in first: the simulation's end is then the last entry but the signing.)
        auditor = self.actor(AUDITOR.username)
        record_simulation_step(workflow, "simulation.finished", summary_counts)
        entries = checkpoint_now(workflow, auditor).tree_size
        planted = dict(sorted(self.planted.items()))
        return SimulationSummary(
            marker=SIMULATED,
            seed=self.settings.seed,
            start=self.clock_start,
            end=workflow.now(),
            users=len(self.people),
            staff=self.settings.staff,
            units=tuple(sorted({person.unit for person in self.people.values()})),
            gallery_subjects=self.settings.gallery + len(MATES),
            probe_photos=len(self.probes),
            requests=sum(statuses.values()),
            by_status=dict(sorted(statuses.items())),
            denial_reasons=dict(sorted(denials.items())),
            approval_decisions=dict(sorted(approvals.items())),
            candidate_lists=lists,
            lists_reviewed=reviewed,
            verdicts=dict(sorted(verdicts.items())),
            releases=releases,
            refused_steps=dict(sorted(self.refused.items())),
            requests_by_user=by_user,
            planted=planted,
            misbehaving={user: PLANTED_KINDS[kind] for user, kind in planted.items()},
            login=NOBODY_LOGS_IN if self.settings.password is None else EVERYONE_LOGS_IN,
            audit_entries=entries,
            seconds=round(seconds, 1),
        )

    @property
    def clock_start(self) -> datetime:
        return datetime.combine(
            self.first_day - timedelta(days=1), clock_time(9), tzinfo=self.zone
        ).astimezone(UTC)
