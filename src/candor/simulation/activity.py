"""Simulated activity: weeks of an agency's searches, run through the real workflow.

Only in a new `simulation` workspace. The simulation makes its own people (the one
place where users are made without a person at a keyboard: two admins bootstrapped,
everyone else requested by one admin and confirmed by the other, all audited as usual),
puts a policy in force derived from the two-reviewers example, loads synthetic
subjects and enrols the two demo portraits for real, so that probes have true mates.
Then a simulated clock walks through `weeks` weeks: analysts ask for searches with
variants of the demo portraits (most allowed and run; some denied; repeats wait for a
supervisor, who approves or rejects them), examiners review most candidate lists and
release leads when two agree, and a few people misbehave in ways reports should show:

- one analyst searches far more than the rest of their unit (and hits the daily quota),
- one searches at night and at weekends,
- one keeps re-running the same probe (each a repeat needing approval),
- one keeps asking for outside agencies (denied by the policy),
- one works on with an expired training certificate until an admin renews it.

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

from candor.simulation.synthetic import load_synthetic_gallery
from candor.workflow import Provenance, example_policy_path
from candor.workflow.accounts import (
    Actor,
    NewUser,
    authenticate,
    bootstrap,
    confirm_change,
    login,
    request_policy_change,
    request_user,
    update_certificate,
)
from candor.workflow.audit_trail import CheckpointSchedule
from candor.workflow.context import Clock, ProbeCache, Workflow
from candor.workflow.demo_photos import demo_variants, probe_variants, save_photos
from candor.workflow.enrolment import EnrolmentRequest, EnrolmentStatus, enrol_files
from candor.workflow.errors import WorkflowError
from candor.workflow.governed import (
    RequestForm,
    RequestOutcome,
    decide_approval,
    record_verdict,
    release_lead,
    request_search,
    run_approved,
    view_candidates,
)
from candor.workflow.synthetic import (
    SIMULATION_PURPOSE,
    check_policy_text,
    record_simulation_step,
    simulated_activity,
)
from candor.workflow.worklists import workspace_state

SIMULATED = "SIMULATED"
HOME_AGENCY = "Example Regional Investigation Unit"
OUTSIDE_AGENCY = "Neighbouring County Sheriff"
FOLDER = "simulation"
# Near-identical probes only: variants of one portrait score up to about 0.9994
# against each other, so a lower similarity would make almost every search a repeat.
REPEAT_SIMILARITY = "0.9995"
REPEAT_WINDOW_DAYS = 1
# Hourly in simulated time: the default (every minute) would sign a checkpoint after
# nearly every simulated action, each over the whole log.
CHECKPOINT_SCHEDULE = CheckpointSchedule(every_entries=200, every_seconds=3600.0)
WORKDAY = (clock_time(8), clock_time(18))
MATES = {"collins": "SIM-DEMO-COLLINS", "hopper": "SIM-DEMO-HOPPER"}
OFFENCES = ("robbery", "aggravated_assault", "homicide", "sexual_offence", "kidnapping")
NOT_ALLOWED_OFFENCE = "shoplifting"


class SimulationRefusedError(WorkflowError):
    """The workspace is not a new simulation workspace."""


@dataclass(frozen=True)
class Person:
    """A simulated member of staff."""

    username: str
    unit: str
    role: str
    weight: float = 1.0  # share of the searches, relative to an ordinary analyst
    habit: str | None = None  # how they misbehave, if they do


ADMINS = (
    Person("records.admin1", "Records", "admin"),
    Person("records.admin2", "Records", "admin"),
)
STAFF = (
    Person("robbery.a1", "Robbery", "analyst", 4.0, "searches far above the unit's median"),
    Person("robbery.a2", "Robbery", "analyst"),
    Person("robbery.a3", "Robbery", "analyst"),
    Person("robbery.a4", "Robbery", "analyst", 1.0, "works on with an expired certificate"),
    Person("burglary.a1", "Burglary", "analyst"),
    Person("burglary.a2", "Burglary", "analyst", 1.2, "searches at night and at weekends"),
    Person("burglary.a3", "Burglary", "analyst", 1.0, "asks for outside agencies"),
    Person("burglary.a4", "Burglary", "analyst"),
    Person("homicide.a1", "Homicide", "analyst", 1.5, "re-runs the same probe"),
    Person("homicide.a2", "Homicide", "analyst"),
    Person("homicide.a3", "Homicide", "analyst"),
    Person("forensic.e1", "Forensic Examination", "examiner"),
    Person("forensic.e2", "Forensic Examination", "examiner"),
    Person("forensic.e3", "Forensic Examination", "examiner"),
    Person("forensic.e4", "Forensic Examination", "examiner"),
    Person("forensic.e5", "Forensic Examination", "examiner"),
    Person("robbery.s1", "Robbery", "supervisor"),
    Person("burglary.s1", "Burglary", "supervisor"),
    Person("homicide.s1", "Homicide", "supervisor"),
    Person("standards.aud1", "Professional Standards", "auditor"),
)
OVER_EAGER, EXPIRED, NIGHT_OWL, OUTSIDER, RE_RUNNER = (
    "robbery.a1",
    "robbery.a4",
    "burglary.a2",
    "burglary.a3",
    "homicide.a1",
)


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate. `start` is the first Monday (default: `weeks` weeks before this
    week's Monday, so the simulated weeks end before the present)."""

    weeks: int = 8
    searches: int = 400
    seed: int = 1
    gallery: int = 2000
    probes: int | None = None
    start: date | None = None

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
        return self


@dataclass(frozen=True)
class SimulationSummary:
    """What the simulation did, counted from the workspace afterwards; all SIMULATED."""

    marker: str
    seed: int
    start: datetime
    end: datetime
    users: int
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
    misbehaving: dict[str, str]
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
    # Every probe stays detected for the whole run: the pool is reused all along.
    workflow.probe_cache = ProbeCache(probe_count + 8)
    try:
        simulation = _Simulation(workflow, clock, settings, first_day, probe_count, progress)
        simulation.set_up()
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


def _probe_count(settings: SimulationSettings) -> int:
    # A fresh search takes a photo nobody searched in the repeat window (a day); enough
    # photos for a busy day, with room to spare, keep repeats to the ones meant.
    per_day = settings.searches / (5 * settings.weeks)
    return max(24, math.ceil(per_day * 1.5))


def simulation_policy(settings: SimulationSettings) -> str:
    """The two-reviewers example adapted to a simulation: its text, marked SIMULATED.

    Source type `simulation`; no outside agencies (so asking for one is denied); a
    repeat means a near-identical probe within a day; quotas an ordinary analyst stays
    under and the over-eager one runs into.
    """
    weight_total = sum(person.weight for person in STAFF if person.role == "analyst")
    ordinary_per_day = settings.searches / weight_total / (5 * settings.weeks)
    per_day = max(4, math.ceil(2.5 * ordinary_per_day))
    replacements = {
        "name": 'name = "simulation-two-reviewers"',
        "description": (
            'description = "SIMULATED: the two-reviewers example adapted for candor simulate."'
        ),
        "outside_agencies_allowed": "outside_agencies_allowed = false",
        "window_days": f"window_days = {REPEAT_WINDOW_DAYS}",
        "similarity": f"similarity = {REPEAT_SIMILARITY}",
        "per_user_per_day": f"per_user_per_day = {per_day}",
        # About 21 working days' worth of the daily quota.
        "per_user_per_30_days": f"per_user_per_30_days = {per_day * 20}",
        "source_types": f'source_types = ["{SIMULATION_PURPOSE}"]',
    }
    lines = [f"# {SIMULATED}: written by `candor simulate`; not any agency's policy."]
    for line in example_policy_path("two-reviewers").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(replacements.get(key, line))
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
        self.password = secrets.token_urlsafe(24)  # held in memory only: nobody logs in later
        self.tokens: dict[str, tuple[str, datetime]] = {}
        self.people = {person.username: person for person in (*ADMINS, *STAFF)}
        self.events: list[_Event] = []
        self.order = itertools.count()
        self.probes: list[_Probe] = []
        self.blurred: _Probe | None = None
        self.used_today: dict[date, set[int]] = {}
        self.last_probe: dict[str, int] = {}
        self.refused: Counter[str] = Counter()
        self.case_numbers = itertools.count(1)
        self.certificate_renewed = False
        # EXPIRED's certificate lapses a quarter of the way through; renewed a week later.
        self.lapse = first_day + timedelta(days=7 * settings.weeks // 4)

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
                "first_day": self.first_day.isoformat(),
            },
        )
        first, second = (self._new_user(person) for person in ADMINS)
        bootstrap(workflow, first, second)
        self._policy()
        for person in STAFF:
            self._tick(minutes=2)
            change = request_user(workflow, self.actor(ADMINS[0].username), self._new_user(person))
            confirm_change(workflow, self.actor(ADMINS[1].username), change.id)
        self._gallery()
        self._probes()
        self._schedule_searches()

    def _new_user(self, person: Person) -> NewUser:
        expires = self.first_day + timedelta(days=730)
        if person.username == EXPIRED:
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

    # -- who does what, when ---------------------------------------------------------------

    def _schedule_searches(self) -> None:
        analysts = [person for person in STAFF if person.role == "analyst"]
        weights = np.array([person.weight for person in analysts])
        # Ordinary analysts differ too: each one's share varies by up to a third.
        weights = weights * self.rng.uniform(0.7, 1.3, size=len(weights))
        chosen = self.rng.choice(
            len(analysts), size=self.settings.searches, p=weights / weights.sum()
        )
        for index in chosen:
            person = analysts[int(index)]
            self._push(self._search_moment(person), "search", {"user": person.username})

    def _search_moment(self, person: Person) -> datetime:
        weeks = self.settings.weeks
        if person.username == NIGHT_OWL and self.rng.random() < 0.6:
            day = self.first_day + timedelta(days=int(self.rng.integers(0, 7 * weeks)))
            minutes = int(self.rng.integers(20 * 60, 26 * 60))  # 20:00 to 02:00
        else:
            day = self.first_day + timedelta(
                weeks=int(self.rng.integers(0, weeks)), days=int(self.rng.integers(0, 5))
            )
            minutes = int(self.rng.integers(8 * 60 + 15, 17 * 60 + 45))
        local = datetime.combine(day, clock_time(0), tzinfo=self.zone) + timedelta(
            minutes=minutes, seconds=int(self.rng.integers(0, 60))
        )
        return local.astimezone(UTC)

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

    def actor(self, username: str) -> Actor:
        """The person, logged in: a new login when their week-long session has run out."""
        now = self.workflow.now()
        token, expires = self.tokens.get(username, ("", now))
        if expires <= now + timedelta(minutes=1):
            result = login(self.workflow, username, self.password, lifetime=timedelta(days=7))
            token, expires = result.token, result.expires_at
            self.tokens[username] = (token, expires)
        return authenticate(self.workflow, token)

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
        if self.certificate_renewed or self.workflow.today() < self.lapse + timedelta(days=7):
            return
        if not WORKDAY[0] <= self.clock.moment.astimezone(self.zone).time() < WORKDAY[1]:
            return
        self.certificate_renewed = True
        update_certificate(
            self.workflow,
            self.actor(ADMINS[0].username),
            EXPIRED,
            f"SIM-FRT-{EXPIRED}-renewed",
            self.workflow.today() + timedelta(days=730),
        )

    def _on_search(self, user: str) -> None:
        person = self.people[user]
        actor = self.actor(user)
        today = self.workflow.today()
        used = self.used_today.setdefault(today, set())
        agency, offence, edited = HOME_AGENCY, str(self.rng.choice(OFFENCES)), None
        roll = self.rng.random()
        if user == RE_RUNNER and user in self.last_probe and roll < 0.5:
            probe_index: int | None = self.last_probe[user]
        elif roll < 0.03:
            probe_index = int(self.rng.choice(sorted(used))) if used else None
        else:
            probe_index = None
        if probe_index is None:
            fresh = [i for i in range(len(self.probes)) if i not in used]
            pool = fresh or list(range(len(self.probes)))
            probe_index = int(pool[int(self.rng.integers(0, len(pool)))])
        probe = self.probes[probe_index]
        if user == OUTSIDER and self.rng.random() < 0.4:
            agency = OUTSIDE_AGENCY
        if self.rng.random() < 0.02:
            offence = NOT_ALLOWED_OFFENCE
        if self.rng.random() < 0.01 and self.blurred is not None:
            probe = self.blurred
        if self.rng.random() < 0.1:
            edited = "cropped to the face"
        form = RequestForm(
            case_number=f"SIM-{today.year}-{next(self.case_numbers):06d}",
            offence_category=offence,
            purpose="investigative_lead",
            requesting_agency=agency,
            requesting_unit=person.unit,
            probe_kind="still_photo",
            edits=edited,
        )
        outcome = request_search(self.workflow, actor, probe.path, form, top=10)
        used.add(probe_index)
        self.last_probe[user] = probe_index
        self._after(outcome, user, probe.mate)

    def _after(self, outcome: RequestOutcome, requester: str, mate: str) -> None:
        now = self.workflow.now()
        if outcome.status == "pending_approval":
            delay = float(self.rng.uniform(20, 240))
            self._push(
                self._working_moment_after(now, delay),
                "approval",
                {"search_id": outcome.search_id, "requester": requester, "mate": mate},
            )
        elif outcome.status == "completed" and self.rng.random() < 0.85:
            # Most lists get two examiners; some only one; the rest are never reviewed.
            examiners = [p.username for p in STAFF if p.role == "examiner"]
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
        supervisors = [p.username for p in STAFF if p.role == "supervisor"]
        supervisor = supervisors[int(self.rng.integers(0, len(supervisors)))]
        approve = self.rng.random() < (0.3 if requester == RE_RUNNER else 0.75)
        reason = (
            "new information in the case file justifies a second search"
            if approve
            else "no new information since the earlier search"
        )
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
            if candidate.released:
                continue
            if candidate.subject_ref == mate:
                verdict = "possible_match" if self.rng.random() < 0.92 else "inconclusive"
                rationale = "ear shape, hairline and nose agree; no disagreeing feature"
            else:
                verdict = "not_a_match" if self.rng.random() < 0.95 else "inconclusive"
                rationale = "face shape and features differ from the probe"
            record_verdict(self.workflow, actor, search_id, candidate.rank, verdict, rationale)
            agreed = sum(1 for v in candidate.verdicts if v["verdict"] == "possible_match")
            if verdict == "possible_match" and agreed >= 1 and self.rng.random() < 0.8:
                release_lead(
                    self.workflow,
                    actor,
                    search_id,
                    candidate.rank,
                    "two independent examiners agree: investigative lead only",
                )

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
        entries = record_simulation_step(workflow, "simulation.finished", summary_counts)
        return SimulationSummary(
            marker=SIMULATED,
            seed=self.settings.seed,
            start=self.clock_start,
            end=workflow.now(),
            users=len(self.people),
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
            misbehaving={p.username: p.habit for p in STAFF if p.habit is not None},
            audit_entries=entries,
            seconds=round(seconds, 1),
        )

    @property
    def clock_start(self) -> datetime:
        return datetime.combine(
            self.first_day - timedelta(days=1), clock_time(9), tzinfo=self.zone
        ).astimezone(UTC)
