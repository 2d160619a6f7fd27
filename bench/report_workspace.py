"""A workspace full of synthetic search activity, for the report benchmark and screenshots.

The rows and the audit entries are written directly (store models, `build_entry`,
signed checkpoints every 100 entries), not through the governed workflow: the
workflow's face search and argon2 logins would take hours for 10,000 searches, and
only the direct path can date entries across weeks. The entries have exactly the
actions, objects and details that `candor.workflow.governed` writes, and the rows the
state those entries imply, so the reports verify and reconcile them like any other
workspace. No face image or template is involved; the workspace's purpose is
`benchmark` or `simulation`, and its reports say so.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from candor.audit import Checkpoint, MerkleAccumulator, build_entry, leaf_hash
from candor.policy import example_policy_path
from candor.store import (
    Approval,
    AuditCheckpoint,
    AuditEntry,
    Candidate,
    GalleryImage,
    PolicyRecord,
    Release,
    SearchRequest,
    Subject,
    User,
    UserRole,
    Verdict,
    Workspace,
)
from candor.store.audit_log import entry_columns
from candor.workflow.audit_trail import load_signing_key, log_origin, start_audit_log

UNITS = {"Robbery": 8, "Burglary": 7, "Homicide": 6, "Fraud": 6}
EXAMINERS = ("exa", "exb", "exc", "exd")
SUPERVISORS = ("supa", "supb")
OFFENCES = ("robbery", "homicide", "aggravated_assault", "sexual_offence", "kidnapping")
PURPOSES = ("investigative_lead", "investigative_lead", "investigative_lead", "missing_person")
OUTSIDE = ("Neighbouring County Sheriff", "State Highway Patrol")
# Not a real hash: no user of this workspace ever logs in.
NO_LOGIN = "$argon2id$v=19$m=65536,t=3,p=4$bm8tbG9naW4$bm8tbG9naW4tYmVuY2htYXJr"
CHECKPOINT_EVERY = 100


def _hex(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@dataclass
class _Log:
    """Entries in time order; seqs, leaf hashes and checkpoints added as they are written."""

    workspace: Workspace
    events: list[tuple[datetime, int, str | None, str, dict[str, Any], dict[str, Any]]] = field(
        default_factory=list
    )

    def add(
        self,
        moment: datetime,
        actor: str | None,
        action: str,
        objects: dict[str, Any],
        details: dict[str, Any],
    ) -> None:
        moment = moment.astimezone(UTC)
        self.events.append((moment, len(self.events), actor, action, objects, details))

    def rows(self) -> Iterator[tuple[dict[str, Any] | None, dict[str, Any]]]:
        """(checkpoint row or None, entry row) in seq order."""
        key = load_signing_key(self.workspace)
        origin = log_origin(self.workspace)
        tree = MerkleAccumulator()
        prev = "0" * 64
        for seq, (moment, _, actor, action, objects, details) in enumerate(
            sorted(self.events, key=lambda e: (e[0], e[1])), start=1
        ):
            body = build_entry(
                seq=seq,
                time=moment,
                actor=actor,
                action=action,
                objects=objects,
                details=details,
                prev_hex=prev,
            )
            leaf = leaf_hash(body)
            prev = leaf.hex()
            tree.append(leaf)
            entry = {
                "seq": seq,
                "body": body,
                "leaf_hash": prev,
                "created_at": moment,
                # The audit browser's columns, as the workflow writes them.
                **entry_columns(action, actor, objects),
            }
            checkpoint = None
            if seq % CHECKPOINT_EVERY == 0:
                signed_at = moment + timedelta(microseconds=1)
                note = key.sign(Checkpoint(origin, seq, tree.root(), signed_at))
                checkpoint = {
                    "tree_size": seq,
                    "root_hash": tree.root().hex(),
                    "note": note,
                    "created_at": signed_at,
                }
            yield checkpoint, entry


@dataclass(frozen=True)
class Activity:
    """What the generator made, for the benchmark's record."""

    users: int
    searches: int
    entries: int
    gallery_images: int


def build(
    home: Path,
    *,
    searches: int,
    first_day: date,
    last_day: date,
    purpose: str = "benchmark",
    timezone: str = "UTC",
    seed: int = 20190101,
) -> Activity:
    """Make a workspace at `home` with `searches` requests between the two days."""
    rng = random.Random(seed)
    workspace = Workspace.create(
        home, purpose=purpose, timezone=timezone, start_audit_log=start_audit_log
    )
    zone = ZoneInfo(timezone)
    start = datetime.combine(first_day, time(0), tzinfo=zone)
    log = _Log(workspace)
    with workspace.session() as session, session.begin():
        users = _users(session, log, start)
        policy_sha256, home_agency = _policy(session, log, start, users["adm"], purpose)
        images = _gallery(session, log, start, rng, purpose)
        made = _searches(
            session, log, rng, users, policy_sha256, home_agency, zone, first_day, last_day,
            searches, images,
        )  # fmt: skip
        entries = checkpoints = 0
        batch: list[dict[str, Any]] = []
        for checkpoint, entry in log.rows():
            batch.append(entry)
            entries += 1
            if checkpoint is not None:
                session.execute(insert(AuditEntry), batch)
                batch = []
                session.execute(insert(AuditCheckpoint), [checkpoint])
                checkpoints += 1
        if batch:
            session.execute(insert(AuditEntry), batch)
    workspace.close()
    return Activity(len(users), made, entries, len(images))


def _users(session: Any, log: _Log, start: datetime) -> dict[str, int]:
    people: list[tuple[str, str, str]] = [("adm", "Records", "admin")]
    for unit, count in UNITS.items():
        prefix = unit[:3].lower()
        people += [(f"{prefix}{i:02d}", unit, "analyst") for i in range(1, count + 1)]
    people += [(name, "Forensics", "examiner") for name in EXAMINERS]
    people += [(name, "Command", "supervisor") for name in SUPERVISORS]
    ids = {}
    for offset, (name, unit, role) in enumerate(people):
        user = User(
            username=name,
            display_name=name,
            unit=unit,
            password_hash=NO_LOGIN,
            certificate_ref=f"FRT-{name}",
            certificate_expires=date(2099, 1, 1),
            disabled=False,
            created_at=start - timedelta(days=30, minutes=-offset),
            created_by="bootstrap",
        )
        session.add(user)
        session.flush()
        session.add(UserRole(user_id=user.id, role=role))
        ids[name] = user.id
        log.add(
            user.created_at, None, "user.bootstrap", {"user": user.id},
            {"username": name, "unit": unit, "roles": [role]},
        )  # fmt: skip
    return ids


def _policy(session: Any, log: _Log, start: datetime, admin: int, purpose: str) -> tuple[str, str]:
    lines = []
    for line in example_policy_path("moratorium").read_text().splitlines():
        if line.split("=", 1)[0].strip() == "source_types":
            line = f'source_types = ["{purpose}"]'
        lines.append(line)
    text = "\n".join(lines) + "\n"
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    moment = start - timedelta(days=29)
    session.add(
        PolicyRecord(
            sha256=sha256, name="moratorium-example", version="1", source=text,
            added_at=moment, added_by=admin, activated_at=moment, confirmed_by=admin,
        )
    )  # fmt: skip
    log.add(moment, "adm", "policy.change_requested", {}, {"policy_sha256": sha256})
    return sha256, "Example City Police Department"


def _gallery(
    session: Any, log: _Log, start: datetime, rng: random.Random, purpose: str
) -> list[int]:
    images = []
    moment = start - timedelta(days=20)
    for number in range(1, 301):
        subject = Subject(external_ref=f"SIM-{number:05d}", created_at=moment, created_by="adm")
        session.add(subject)
        session.flush()
        image = GalleryImage(
            subject_id=subject.id, sha256=_hex("image", number), format="JPEG", width=400,
            height=500, byte_size=40_000, source_type=purpose, source_ref="synthetic activity",
            legal_basis="synthetic data for benchmarks and screenshots",
            collected_on=date(2018, 6, 1), retain_until=date(2099, 1, 1), enrolled_by="adm",
            enrolled_at=moment, face_choice="largest-central", face_left=100, face_top=100,
            face_right=300, face_bottom=350, quality={},
        )  # fmt: skip
        session.add(image)
        session.flush()
        log.add(
            moment, "adm", "gallery.enrolled",
            {"subject": subject.id, "image": image.id, "template": image.id},
            {"image_sha256": image.sha256, "source_type": purpose, "model": "synthetic",
             "face_choice": "largest-central"},
        )  # fmt: skip
        images.append(image.id)
        moment += timedelta(minutes=3)
    # Two people expunged a few days into the period, by internal id only.
    for image_id in images[:2]:
        image = session.get(GalleryImage, image_id)
        subject_id = image.subject_id
        session.delete(image)
        session.delete(session.get(Subject, subject_id))
        log.add(
            start + timedelta(days=10, hours=11), "adm", "gallery.expunged",
            {"subject": subject_id},
            {"images": [image_id], "image_sha256": [_hex("image", image_id)], "templates": []},
        )  # fmt: skip
    session.flush()
    return images[2:]


def _searches(
    session: Any,
    log: _Log,
    rng: random.Random,
    users: dict[str, int],
    policy_sha256: str,
    home_agency: str,
    zone: ZoneInfo,
    first_day: date,
    last_day: date,
    count: int,
    images: list[int],
) -> int:
    analysts = [name for name in users if name[:3] in {u[:3].lower() for u in UNITS}]
    # A few habits for the flags to find: one heavy user, one night owl, one who repeats.
    weights = [12.0 if name == "rob03" else 1.0 for name in analysts]
    days = (last_day - first_day).days + 1
    requests: list[tuple[datetime, str]] = []
    for _ in range(count):
        user = rng.choices(analysts, weights)[0]
        day = first_day + timedelta(days=rng.randrange(days))
        while day.weekday() >= 5 and rng.random() < 0.97:
            day = first_day + timedelta(days=rng.randrange(days))
        hour = rng.randint(22, 23) if user == "bur02" and rng.random() < 0.5 else rng.randint(8, 17)
        local = datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), tzinfo=zone)
        requests.append((local.astimezone(UTC), user))
    requests.sort()
    search_rows, candidate_rows, approval_rows, verdict_rows, release_rows = [], [], [], [], []
    candidate_id = 0
    earlier_by_user: dict[str, int] = {}
    for search_id, (moment, user) in enumerate(requests, start=1):
        kind = "verify" if rng.random() < 0.03 else "search"
        outside = rng.random() < 0.03
        agency = rng.choice(OUTSIDE) if outside else home_agency
        offence = "shoplifting" if rng.random() < 0.01 else rng.choice(OFFENCES)
        reasons = []
        if offence == "shoplifting":
            reasons.append(("offence_not_allowed", "the offence category is not allowed"))
        if outside:
            reasons.append(("outside_agency", "searches for outside agencies are not allowed"))
        if rng.random() < 0.01:
            reasons.append(("quota_per_day", "the daily quota is reached"))
        repeat_rate = 0.25 if user == "fra04" else 0.03
        earlier = earlier_by_user.get(user) if rng.random() < repeat_rate else None
        outcome = "deny" if reasons else "needs_approval" if earlier else "allow"
        if outcome == "needs_approval":
            reasons.append(("repeat_search", f"repeats search {earlier}"))
        case = f"2019-{search_id:06d}"
        unit = next(u for u in UNITS if u[:3].lower() == user[:3])
        decision = {
            "outcome": outcome,
            "reasons": [{"code": c, "message": m} for c, m in reasons],
            "policy_sha256": policy_sha256,
            "policy_name": "moratorium-example",
            "policy_version": "1",
            "top": 20,
            "earlier_search_id": earlier,
        }
        log.add(
            moment, user, f"{kind}.requested", {"search": search_id, "case": case},
            {"kind": kind, "offence_category": offence, "purpose": rng.choice(PURPOSES),
             "requesting_agency": agency, "requesting_unit": unit, "probe_kind": "still_photo"},
        )  # fmt: skip
        purpose = log.events[-1][5]["purpose"]
        log.add(moment, user, "policy.decided", {"search": search_id}, {"decision": decision})
        status = {"deny": "denied", "needs_approval": "pending_approval", "allow": "approved"}[
            outcome
        ]
        ran_at = None
        clock = moment
        if outcome == "needs_approval":
            clock += timedelta(hours=rng.randint(1, 20))
            verdict = "approved" if rng.random() < 0.8 else "rejected"
            supervisor = rng.choice(SUPERVISORS)
            approval_rows.append(
                {"search_id": search_id, "supervisor_id": users[supervisor], "decision": verdict,
                 "reason": "reviewed", "decided_at": clock}
            )  # fmt: skip
            log.add(
                clock, supervisor, f"search.{verdict}", {"search": search_id},
                {"reason": "reviewed", "earlier_search": earlier},
            )  # fmt: skip
            status = verdict
        candidates = 0
        if status == "approved":
            clock += timedelta(seconds=rng.randint(1, 600))
            ran_at, status = clock, "completed"
            candidates = 0 if kind == "verify" else rng.randint(3, 8)
            details: dict[str, Any] = (
                {"score": "0.912345", "passed": True, "threshold": "0.9"}
                if kind == "verify"
                else {"gallery_size": len(images), "model": "synthetic", "candidates": candidates,
                      "above_threshold": 1, "threshold": "0.930000"}
            )  # fmt: skip
            log.add(clock, user, f"{kind}.run", {"search": search_id}, details)
            first_candidate = candidate_id + 1
            for rank in range(1, candidates + 1):
                candidate_id += 1
                image = images[(search_id * 7 + rank) % len(images)]
                candidate_rows.append(
                    {"id": candidate_id, "search_id": search_id, "rank": rank,
                     "score": 0.95 - rank / 100, "subject_id": image, "image_id": image,
                     "template_id": image, "above_threshold": rank == 1}
                )  # fmt: skip
            reviewed = candidates and (
                rng.random() < 0.97 or moment.date() > last_day - timedelta(days=7)
            )
            if reviewed:
                clock += timedelta(hours=rng.randint(1, 48))
                first, second = rng.sample(EXAMINERS, 2)
                log.add(
                    clock,
                    first,
                    "candidates.viewed",
                    {"search": search_id},
                    {"candidates": candidates},
                )
                agree = rng.random() < 0.3
                for examiner, verdict in (
                    (first, "possible_match"),
                    (second, "possible_match" if agree else "not_a_match"),
                ):
                    clock += timedelta(minutes=rng.randint(5, 90))
                    verdict_rows.append(
                        {"candidate_id": first_candidate, "examiner_id": users[examiner],
                         "verdict": verdict, "rationale": "compared features", "created_at": clock}
                    )  # fmt: skip
                    log.add(
                        clock, examiner, "candidate.verdict",
                        {"search": search_id, "candidate": first_candidate},
                        {"rank": 1, "verdict": verdict, "rationale": "compared features"},
                    )  # fmt: skip
                if agree:
                    clock += timedelta(minutes=30)
                    release_rows.append(
                        {"candidate_id": first_candidate, "released_by": users[first],
                         "reason": "two examiners agree", "released_at": clock,
                         "label": "investigative lead only"}
                    )  # fmt: skip
                    log.add(
                        clock, first, "lead.released",
                        {"search": search_id, "candidate": first_candidate},
                        {"rank": 1, "reason": "two examiners agree", "examiners": [first, second]},
                    )  # fmt: skip
        if outcome != "deny":
            earlier_by_user[user] = search_id
        search_rows.append(
            {"id": search_id, "kind": kind, "requester_id": users[user], "case_number": case,
             "offence_category": offence, "purpose": purpose, "requesting_agency": agency,
             "requesting_unit": unit, "probe_kind": "still_photo", "probe_edited": False,
             "requested_top": 20, "status": status, "decision": decision,
             "policy_sha256": policy_sha256, "earlier_search_id": earlier,
             "probe_sha256": _hex("probe", search_id),
             "second_probe_sha256": _hex("second", search_id) if kind == "verify" else None,
             "created_at": moment, "ran_at": ran_at}
        )  # fmt: skip
    session.execute(insert(SearchRequest), search_rows)
    if candidate_rows:
        session.execute(insert(Candidate), candidate_rows)
    if approval_rows:
        session.execute(insert(Approval), approval_rows)
    if verdict_rows:
        session.execute(insert(Verdict), verdict_rows)
    if release_rows:
        session.execute(insert(Release), release_rows)
    return len(search_rows)
