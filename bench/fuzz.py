"""Fuzz the parsers that take outsiders' bytes, each for a bounded time, with hypothesis.

    python bench/fuzz.py                      # every target, 60 s each
    python bench/fuzz.py --target image --seconds 10
    python bench/fuzz.py --target api-postgres     # the API on a throw-away PostgreSQL

Targets (each input must end in the module's typed refusal, never anything else):

- image: candor.images.decode.decode_image on real JPEG/PNG/WebP bytes mutated (bytes
  flipped, cut, repeated, overwritten with edge values) and on wholly random bytes;
  anything but an ImageError is a find.
- policy: candor.policy.parse.parse_policy on the example policies' TOML mutated by
  line and by value (wrong types, huge numbers, odd strings, tables for values); anything
  but a PolicyError is a find.
- audit: candor.audit.verify_export on a small real export (signed entries, checkpoints,
  keys, witness) with its files mutated, removed or added; it answers a report, so any
  exception at all is a find. A mutated export that still verifies is counted apart
  (accepted_changed) to be read: a change in the unchecked tail is allowed to pass.
- api: the FastAPI app over a demo agency (tests/server/support.py's: the usual staff,
  two enrolled portraits): random JSON, form and raw bodies, query strings and path
  values to every route, as a logged-in user (bearer token for /api, cookie and CSRF
  token for the pages) or nobody; any 5xx is a find.

Finds are not raised inside hypothesis (which would stop and shrink): each is recorded
with its exception and the smallest input seen for the same place, and the run goes on
until its time is spent. bench/results/fuzz.json: per target, examples tried, seconds,
finds. Replays of the finds fixed are in tests/*/test_fuzz_regressions.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import write_results
from tests.server.support import CASE

REPO = Path(__file__).resolve().parent.parent
FACES = Path("/work/shared/faces")
TARGETS = ("image", "policy", "audit", "api", "api-postgres")

# What the fuzzing found while it was written (issue 15), each fixed, with its replay test:
# a later run that finds one again has found the fix undone.
FIXED: dict[str, list[dict[str, str]]] = {
    "api-postgres": [
        {
            "find": "POST /api/searches with a NUL in case_number: psycopg DataError, a 500 "
            "(PostgreSQL cannot store NUL in text); so any text field of any form",
            "fix": "workflow/limits.py: every text limit refuses NUL, one-line fields every "
            "control character; server/errors.py: a refused text is a 422",
            "test": "tests/server/test_fuzz_regressions.py::test_a_nul_in_a_case_number_is_a_422",
        },
        {
            "find": "POST /api/users/a%00b/enable (and every route naming a user in its path): "
            "DataError in store/accounts.py user_by_name, a 500",
            "fix": "workflow/accounts.py _require_user checks the username's text first",
            "test": "tests/server/test_fuzz_regressions.py::"
            "test_a_nul_in_a_username_in_the_path_is_a_422",
        },
        {
            "find": "GET /gallery/a%00b and /api/gallery/subjects/a%00b: DataError in "
            "store/gallery.py find_subject, a 500",
            "fix": "workflow/gallery.py gallery_subject checks the reference's text first",
            "test": "tests/server/test_fuzz_regressions.py::"
            "test_a_nul_in_a_subject_reference_in_the_path_is_a_422",
        },
        {
            "find": "GET /approvals?case=a%00b and /api/approvals?case=a%00b: DataError in "
            "store/requests.py requests_in_status_by_page, a 500",
            "fix": "workflow/governed.py pending_approvals checks the case filter's text",
            "test": "tests/server/test_fuzz_regressions.py::"
            "test_a_nul_in_the_approvals_case_filter_is_a_422",
        },
    ],
}
BATCH = 100  # examples per hypothesis run; runs repeat with new seeds until time is up


@dataclass
class Find:
    """One place that failed: its exception, how often, the smallest input that reached it."""

    kind: str
    where: str
    message: str
    count: int = 0
    example: str = ""
    example_size: int = 1 << 62


@dataclass
class Tally:
    """What one target's run tried and found."""

    target: str
    examples: int = 0
    seconds: float = 0.0
    finds: dict[str, Find] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def found(self, error: BaseException, example: str, size: int) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        # The innermost frame in Candor's code names the place; else the innermost at all.
        ours = [f for f in frames if "/candor/" in f.filename] or frames
        where = f"{ours[-1].filename.split('/src/')[-1]}:{ours[-1].lineno}" if ours else "?"
        key = f"{type(error).__name__} at {where}"
        found = self.finds.setdefault(
            key,
            Find(
                type(error).__name__, where, str(error).splitlines()[0][:300] if str(error) else ""
            ),
        )
        found.count += 1
        if size < found.example_size:
            found.example, found.example_size = example[:2000], size

    def as_json(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "seconds": round(self.seconds, 1),
            "finds": [
                {
                    "exception": f.kind,
                    "where": f.where,
                    "message": f.message,
                    "count": f.count,
                    "smallest_example": f.example,
                }
                for f in self.finds.values()
            ],
            **self.notes,
        }


def run_for(seconds: float, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> int:
    """Feed `check` examples from `strategy` for `seconds`; the number tried."""
    end = time.monotonic() + seconds
    tried = 0

    def one(value: Any) -> None:
        nonlocal tried
        if time.monotonic() >= end:
            return
        tried += 1
        check(value)

    while time.monotonic() < end:
        runner = settings(
            max_examples=BATCH,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(strategy)(one))
        runner()
    return tried


# ---- mutations shared by the byte and text targets ---------------------------------------

EDGE_BYTES = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of `seeds` with one to eight random edits."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        # Edits near the start (headers, chunk lengths) matter most: bias towards them.
        limit = draw(st.sampled_from([64, 512, len(data)]))
        at = draw(st.integers(0, min(limit, len(data)) - 1))
        how = draw(st.integers(0, 6))
        if how == 0:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == 1:
            data[at] = draw(st.integers(0, 255))
        elif how == 2:
            value = draw(st.sampled_from(EDGE_BYTES))
            data[at : at + len(value)] = value
        elif how == 3:
            del data[at : at + draw(st.integers(1, 64))]
        elif how == 4:
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif how == 5:
            piece = bytes(data[at : at + draw(st.integers(1, 256))])
            data[at:at] = piece * draw(st.integers(1, 4))
        else:
            del data[at:]
    return bytes(data)


def shown(data: bytes | str) -> str:
    """An input as the results file shows it: text as it is, bytes as hex (cut)."""
    if isinstance(data, str):
        return data
    return data[:1000].hex()


# ---- image ------------------------------------------------------------------------------


def image_seeds() -> list[bytes]:
    seeds: list[bytes] = []
    portraits = sorted(FACES.glob("deepface-tests/*/*.jpg"))[:3] if FACES.exists() else []
    for path in portraits:
        with Image.open(path) as opened:
            small = opened.convert("RGB").resize((96, 96))
        for kind, options in (("JPEG", {"quality": 80}), ("PNG", {}), ("WEBP", {})):
            buffer = io.BytesIO()
            try:
                small.save(buffer, kind, **options)
            except (KeyError, OSError):
                continue
            seeds.append(buffer.getvalue())
    if not seeds:
        sys.path.insert(0, str(REPO))
        from tests.images.pictures import flat_png

        seeds.append(flat_png(96, 96))
    # Greyscale, palette and alpha PNGs and a progressive JPEG: other decoder paths.
    base = Image.new("RGB", (80, 80), (120, 90, 60))
    for mode in ("L", "P", "RGBA", "I;16", "1"):
        buffer = io.BytesIO()
        base.convert(mode).save(buffer, "PNG")
        seeds.append(buffer.getvalue())
    buffer = io.BytesIO()
    base.save(buffer, "JPEG", progressive=True)
    seeds.append(buffer.getvalue())
    return seeds


def fuzz_image(seconds: float, tally: Tally) -> None:
    from candor.images.decode import ImageError, decode_image

    seeds = image_seeds()
    tally.notes["seed_files"] = len(seeds)
    strategy = st.one_of(mutated(seeds), mutated(seeds), st.binary(max_size=4096))

    def check(data: bytes) -> None:
        try:
            decode_image(data, name="fuzz.jpg")
        except ImageError:
            pass
        except Exception as error:  # anything else is what the fuzzing looks for
            tally.found(error, shown(data), len(data))

    tally.examples = run_for(seconds, strategy, check)


# ---- policy -----------------------------------------------------------------------------

TOML_VALUES = [
    "0", "-1", "1", "2", "9999999999999999999999", "-9223372036854775809", "1e400", "nan",
    "inf", "-inf", "0.5", "true", "false", '""', '" "', '"x"', '"\\u0000"', "[]", "[1, 2]",
    '["a", "a"]', "{}", "{ a = 1 }", "2026-13-01", "2026-01-01", "1979-05-27T07:32:00Z",
    "07:32:00", '"""\nmulti\n"""', "[[1], [2]]", '"' + "x" * 5000 + '"',
]  # fmt: skip


@st.composite
def policy_text(draw: st.DrawFn, seeds: list[str]) -> str:
    lines = draw(st.sampled_from(seeds)).splitlines()
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.integers(0, 6))
        line = lines[at]
        if how == 0 and "=" in line:
            key = line.split("=", 1)[0]
            value = draw(st.one_of(st.sampled_from(TOML_VALUES), st.integers().map(str)))
            lines[at] = f"{key}= {value}"
        elif how == 1:
            del lines[at]
        elif how == 2:
            lines.insert(at, lines[draw(st.integers(0, len(lines) - 1))])
        elif how == 3 and "=" in line:
            lines[at] = draw(st.text(min_size=1, max_size=12)) + " =" + line.split("=", 1)[1]
        elif how == 4:
            cut = draw(st.integers(0, len(line)))
            lines[at] = line[:cut] + draw(st.text(max_size=8)) + line[cut:]
        elif how == 5:
            lines.insert(at, "[" + draw(st.sampled_from(["meta", "roles", "x", "search.y"])) + "]")
        else:
            lines = lines[:at]
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


def fuzz_policy(seconds: float, tally: Tally) -> None:
    from candor.policy.errors import PolicyError
    from candor.policy.parse import parse_policy

    seeds = [
        p.read_text(encoding="utf-8")
        for p in sorted(REPO.glob("src/candor/policy/examples/*.toml"))
    ]
    strategy = st.one_of(policy_text(seeds), policy_text(seeds), st.text(max_size=400))

    def check(text: str) -> None:
        try:
            parse_policy(text, file="fuzz.toml")
        except PolicyError:
            pass
        except Exception as error:
            tally.found(error, text, len(text))

    tally.examples = run_for(seconds, strategy, check)


# ---- audit export -----------------------------------------------------------------------

EXPORT_FILES = ("entries.jsonl", "audit.vkey", "audit.keys", "witness.note", "checkpoints/10.note")


def fuzz_audit(seconds: float, tally: Tally) -> None:
    from tests.audit.support import build_log, fixed_key

    from candor.audit import verify_export, write_export

    key = fixed_key()
    entries, notes = build_log(25, 10, key)
    work = Path(tempfile.mkdtemp(prefix="candor-fuzz-audit-"))
    original = work / "original"
    write_export(original, entries, notes, key.verifier_key(), witness=notes[-1])
    files = {name: (original / name).read_bytes() for name in EXPORT_FILES}
    accepted: list[str] = []
    counter = 0

    change = st.tuples(
        st.sampled_from(EXPORT_FILES),
        st.one_of(
            st.builds(lambda data: ("mutate", data), mutated([files["entries.jsonl"]])),
            st.just(("remove", b"")),
            st.builds(lambda data: ("random", data), st.binary(max_size=300)),
        ),
    )
    strategy = st.tuples(
        st.lists(change, min_size=1, max_size=3),
        st.booleans(),  # also a stray file among the checkpoints
    )

    def check(example: tuple[list[tuple[str, tuple[str, bytes]]], bool]) -> None:
        nonlocal counter
        changes, stray = example
        counter += 1
        folder = work / f"e{counter}"
        shutil.copytree(original, folder)
        described = []
        for name, (how, data) in changes:
            path = folder / name
            if how == "remove":
                path.unlink(missing_ok=True)
                described.append(f"{name}: removed")
                continue
            if how == "mutate" and name != "entries.jsonl":
                # The mutation drew from the entries; re-aim it at this file's own bytes.
                data = (
                    bytes(b ^ a for a, b in zip(files[name], data, strict=False))
                    + data[len(files[name]) :]
                )
            path.write_bytes(data)
            described.append(f"{name}: {how} {shown(data)[:400]}")
        if stray:
            (folder / "checkpoints" / "5.note").write_bytes(b"not a note\n")
            described.append("checkpoints/5.note: stray")
        text = "; ".join(described)
        try:
            report = verify_export(folder)
        except Exception as error:  # verify_export answers a report, always
            tally.found(error, text, len(text))
        else:
            changed = any(
                (folder / n).exists() and (folder / n).read_bytes() != files[n]
                for n in EXPORT_FILES
            ) or any(not (folder / n).exists() for n in EXPORT_FILES)
            if report.ok and changed and len(accepted) < 20:
                accepted.append(text[:600])
        shutil.rmtree(folder)

    try:
        tally.examples = run_for(seconds, strategy, check)
    finally:
        shutil.rmtree(work)
    tally.notes["accepted_changed"] = accepted


# ---- API --------------------------------------------------------------------------------

ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e309",
            "NaN",
            "2024-13-45",
            "9" * 40,
            "\x00",
            "a\x00b",
            "../../etc/passwd",
            "%00",
            "\t",
            "é",
            "DEMO-0001",
            "ana",
            "admin1",
            "x" * 3000,
        ]
    ),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=10,
)
PATH_VALUES = st.one_of(
    st.sampled_from(["1", "2", "0", "-1", "999999", str(2**70), "DEMO-0001", "ana", "x"]),
    st.text(min_size=1, max_size=12),
)


@dataclass
class Route:
    path: str
    method: str
    params: list[str]
    names: list[str]  # query, form and JSON field names it declares


def api_routes(app: Any) -> list[Route]:
    from fastapi.routing import APIRoute
    from pydantic import BaseModel

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, APIRoute]]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield prefix, route
            elif hasattr(route, "original_router"):
                # FastAPI includes a router as one lazy route: its own routes are inside.
                inner = getattr(route.include_context, "prefix", "") or ""
                yield from walk(route.original_router.routes, prefix + inner)

    found = []
    for prefix, route in walk(app.routes, ""):
        names: list[str] = []
        params: list[str] = []
        # A route's fields are its own and its dependencies' (the case form is one).
        dependants = [route.dependant]
        while dependants:
            dependant = dependants.pop()
            dependants += dependant.dependencies
            names += [p.alias for p in dependant.query_params if p.alias not in names]
            params += [p.alias for p in dependant.path_params if p.alias not in params]
            for body in dependant.body_params:
                annotation = body.field_info.annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    names += [f.alias or n for n, f in annotation.model_fields.items()]
                elif body.alias not in names:
                    names.append(body.alias)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append(Route(prefix + route.path, method, params, names))
    return found


# Values each field takes, so that most calls get past the first check to the workflow;
# the fuzzing then spoils some of them.
VALID: dict[str, Any] = {
    **CASE,
    "source_type": "demo", "source_ref": "fuzz", "legal_basis": "demonstration only",
    "collected_on": "2024-01-01", "retain_until": "2030-01-01", "subject_ref": "FUZZ-0001",
    "decision": "approve", "reason": "checked", "verdict": "possible_match",
    "rationale": "features agree", "outcome": "excluded", "note": "an alibi", "rank": "1",
    "top": "5", "face_index": "0", "role": "analyst", "roles": ["analyst"], "unit": "Robbery",
    "username": "fuzzed", "password": "a long enough passphrase",
    "certificate_ref": "CERT-9", "certificate_expires": "2030-01-01", "format": "zip",
    "from": "2026-01-01", "to": "2026-12-31", "since": "2026-01-01", "case": "2026-000042",
    "limit": "10", "offset": "0", "status": "completed", "user": "ana", "prefix": "DEMO",
}  # fmt: skip
PATH_VALID = {"username": "ana", "subject_ref": "DEMO-0001", "year": "2026"}
# Ends or changes the session every later call uses (as in tests/server/test_schemathesis).
SKIPPED = {("POST", "/api/logout"), ("POST", "/api/password"), ("POST", "/logout"),
           ("POST", "/password")}  # fmt: skip


@st.composite
def api_call(
    draw: st.DrawFn, routes: list[Route], users: list[str], photos: list[bytes]
) -> dict[str, Any]:
    route = draw(st.sampled_from(routes))
    path = route.path
    for name in route.params:
        # Percent-encoded, as a client must send them: control characters reach the app.
        value = quote(draw(PATH_VALUES), safe="")
        path = path.replace("{" + name + "}", value).replace("{" + name + ":path}", value)
    fields = [name for name in route.names if draw(st.integers(0, 9)) > 0]
    fields += draw(st.lists(ODD_TEXT, max_size=2))
    values = {}
    for name in fields:
        spoilt = name not in VALID or draw(st.integers(0, 3)) == 0
        values[name] = draw(JSONISH if draw(st.booleans()) else ODD_TEXT) if spoilt else VALID[name]
    kind = draw(st.sampled_from(["json", "form", "multipart", "raw", "query", "none"]))
    return {
        "method": route.method,
        "path": path,
        "user": draw(st.sampled_from([*users, None])),
        "kind": kind,
        "values": values,
        "raw": draw(st.binary(max_size=200)) if kind == "raw" else b"",
        "file": draw(st.one_of(st.binary(max_size=200), st.sampled_from(photos), mutated(photos))),
        "file_field": draw(st.sampled_from([*route.names, "probe", "photos", "policy", "file"])),
    }


@contextmanager
def demo_server(database: str) -> Iterator[tuple[Any, Any]]:
    """The demo agency the server tests use, on SQLite or a throw-away PostgreSQL."""
    from tests.server.support import demo_agency, serve

    home = Path(tempfile.mkdtemp(prefix="candor-fuzz-api-"))
    cluster = None
    try:
        if database == "postgres":
            from bench._postgres import BenchCluster

            cluster = BenchCluster(durable=False).start()
            os.environ["CANDOR_DATABASE_URL"] = cluster.new_database()
        agency, photos = demo_agency(home)
        server = serve(agency, photos)
        try:
            yield server, agency
        finally:
            agency.workflow.close()
    finally:
        os.environ.pop("CANDOR_DATABASE_URL", None)
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def page_login(client: Any, username: str) -> str:
    """Log `client` in through the login page; the CSRF token its forms carry."""
    from tests.agency import PASSWORD

    def csrf(page: str) -> str:
        marker = 'name="csrf" value="'
        start = page.index(marker) + len(marker)
        return page[start : page.index('"', start)]

    page = client.get("/login")
    answer = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf": csrf(page.text)}
    )
    return csrf(answer.text if "csrf" in answer.text else client.get("/home").text)


def fuzz_api(seconds: float, tally: Tally, database: str) -> None:
    from fastapi.testclient import TestClient

    users = ["admin1", "ana", "sam", "eve", "ada"]
    with demo_server(database) as (server, _agency):
        routes = [r for r in api_routes(server.app) if (r.method, r.path) not in SKIPPED]
        photos = [path.read_bytes() for path in server.photos.values()]
        tally.notes["routes"] = len(routes)
        tally.notes["database"] = database
        tokens = {user: server.token(user) for user in users}
        pages: dict[str, tuple[Any, str]] = {}
        for user in users:
            client = TestClient(server.app)
            pages[user] = (client, page_login(client, user))
        nobody = TestClient(server.app)
        statuses: dict[str, int] = {}

        def check(call: dict[str, Any]) -> None:
            user, path = call["user"], call["path"]
            api = path.startswith("/api")
            if user is None:
                client, headers = nobody, {}
            elif api:
                client, headers = server.client, {"Authorization": f"Bearer {tokens[user]}"}
            else:
                client, headers = pages[user][0], {}
            values = dict(call["values"])
            if not api and user is not None:
                values.setdefault("csrf", pages[user][1])
            as_text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
            options: dict[str, Any] = {"headers": headers, "follow_redirects": False}
            kind = call["kind"]
            if kind == "json":
                # Encoded here, not by the client (which refuses them): NaN and Infinity
                # are what Python's JSON reader takes and a strict one would not.
                options["content"] = json.dumps(values, allow_nan=True).encode()
                options["headers"] = {**headers, "Content-Type": "application/json"}
            elif kind == "form":
                options["data"] = as_text
            elif kind == "multipart":
                options["data"] = as_text
                options["files"] = {call["file_field"]: ("f.jpg", call["file"])}
            elif kind == "raw":
                options["content"] = call["raw"]
                options["headers"] = {**headers, "Content-Type": "application/json"}
            elif kind == "query":
                options["params"] = as_text
            if call["method"] == "GET" and kind not in ("query", "none"):
                options = {"headers": headers, "follow_redirects": False, "params": as_text}
            shown_call = json.dumps(
                {**call, "raw": call["raw"].hex(), "file": call["file"][:40].hex()}, default=str
            )
            try:
                answer = client.request(call["method"], path, **options)
            except Exception as error:  # the app raised: a 500 in production
                tally.found(error, shown_call, len(shown_call))
                return
            key = f"{answer.status_code // 100}xx"
            statuses[key] = statuses.get(key, 0) + 1
            if answer.status_code >= 500:
                tally.found(
                    RuntimeError(f"{answer.status_code} {answer.text[:200]}"),
                    shown_call,
                    len(shown_call),
                )

        # First a sweep: each route with each of its fields (and path values) holding a NUL
        # and the rest valid, as each user: what PostgreSQL cannot store or even look up.
        swept = 0
        walks = [(route, user) for user in users for route in routes]
        for route, user in walks:
            uploads = [n for n in route.names if n in ("probe", "photos", "first", "policy")]
            for spoilt in [*route.names, *route.params]:
                path = route.path
                for name in route.params:
                    value = quote(
                        "a\x00b" if name == spoilt else PATH_VALID.get(name, "1"), safe=""
                    )
                    path = path.replace("{" + name + "}", value).replace(
                        "{" + name + ":path}", value
                    )
                values = {n: "a\x00b" if n == spoilt else VALID.get(n, "1") for n in route.names}
                for kind in ("query",) if route.method == "GET" else ("json", "multipart"):
                    check(
                        {"method": route.method, "path": path, "user": user, "kind": kind,
                         "values": values, "raw": b"", "file": photos[1],
                         "file_field": (uploads or ["probe"])[0]}
                    )  # fmt: skip
                    swept += 1
        tally.notes["nul_sweep_calls"] = swept
        tally.examples = swept + run_for(seconds, api_call(routes, users, photos), check)
        tally.notes["answers"] = statuses


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    parser.add_argument(
        "--results", default="fuzz", help="bench/results/<name>.json (default fuzz)"
    )
    args = parser.parse_args()
    targets = TARGETS if args.target == "all" else (args.target,)
    results: dict[str, Any] = {}
    for target in targets:
        tally = Tally(target)
        started = time.monotonic()
        print(f"fuzzing {target} for {args.seconds:g} s ...", flush=True)
        if target == "image":
            fuzz_image(args.seconds, tally)
        elif target == "policy":
            fuzz_policy(args.seconds, tally)
        elif target == "audit":
            fuzz_audit(args.seconds, tally)
        else:
            fuzz_api(args.seconds, tally, "postgres" if target == "api-postgres" else "sqlite")
        tally.seconds = time.monotonic() - started
        results[target] = {**tally.as_json(), "fixed_before_this_run": FIXED.get(target, [])}
        print(f"  {tally.examples:,} examples, {len(tally.finds)} finds", flush=True)
        for key, found in tally.finds.items():
            print(f"  FIND {key} (x{found.count}): {found.message[:160]}", flush=True)
    path = write_results(
        args.results,
        {
            "seconds_per_target": args.seconds,
            "load_average_1min": round(os.getloadavg()[0], 2),
            "targets": results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
