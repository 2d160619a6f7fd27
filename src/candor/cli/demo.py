"""`make demo`: Candor's mechanics, end to end, on two public-domain portraits.

Runs unattended and can be run again. It makes a `demo` workspace in .candor-demo/,
prepares probe photos from two portraits that installed packages carry (NASA's photo of
astronaut Eileen Collins from scikit-image, and the US Navy's portrait of Grace Hopper
from matplotlib), and runs the real `candor` commands on them, printing each one. Nothing
comes from the network or from ../shared. Two people show the mechanics, not accuracy.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from candor.workflow import example_policy_path
from candor.workflow.demo_photos import demo_variants, save_photos

console = Console(highlight=False)
DEMO_ROOT = Path(os.environ.get("CANDOR_DEMO_DIR", ".candor-demo")).absolute()
WORKSPACE = DEMO_ROOT / "workspace"
PHOTOS = DEMO_ROOT / "photos"
PROVENANCE = [
    "--source", "demo",
    "--source-ref", "public-domain portraits shipped in scikit-image and matplotlib",
    "--legal-basis", "public domain (US government works); demonstration only",
    "--collected", "2024-01-01",
    "--retain-until", "2030-12-31",
]  # fmt: skip


def say(text: str) -> None:
    """A paragraph of explanation for the newcomer."""
    console.print(" ".join(text.split()), style="cyan")
    console.print()


def candor(*args: str, expect_failure: bool = False, quiet: bool = False) -> str:
    """Run one real `candor` command, show it and its output, and return its stdout.

    quiet: show the command but not its output (for set-up steps whose JSON we read).
    """
    return _run([sys.executable, "-m", "candor", *args], "candor", args, expect_failure, quiet)


def _run(
    argv: list[str], label: str, args: tuple[str, ...], expect_failure: bool, quiet: bool
) -> str:
    shown = " ".join(shlex.quote(a.replace(str(DEMO_ROOT), ".candor-demo")) for a in args)
    console.print(f"[bold]$ {label} {shown}[/]")
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        argv,
        env={**os.environ, "CANDOR_HOME": str(WORKSPACE), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        check=False,
    )
    # Progress bars and errors (stderr) come before the results they precede.
    if not quiet:
        if completed.stderr.strip():
            sys.stdout.write(completed.stderr)
        sys.stdout.write(completed.stdout)
    failed = completed.returncode != 0
    if failed != expect_failure:
        sys.stdout.write(completed.stderr)
        raise SystemExit(
            f"demo stopped: `{label} {shown}` exited {completed.returncode}, "
            f"expected {'failure' if expect_failure else 'success'}"
        )
    console.print()
    return completed.stdout


def prepare_photos() -> dict[str, Path]:
    """The two portraits and variants of them: crops, scale, light, blur, a pair."""
    return save_photos(demo_variants(), PHOTOS)


def fresh_workspace() -> None:
    """Remove the previous demo workspace (only a demo one) so the demo can run again, and
    its key-encryption key with it: the next `candor init` makes a new one."""
    marker = WORKSPACE / "candor-workspace.json"
    if WORKSPACE.exists():
        if not marker.is_file() or json.loads(marker.read_text()).get("purpose") != "demo":
            raise SystemExit(f"{WORKSPACE} exists and is not a demo workspace; not touching it")
        shutil.rmtree(WORKSPACE)
        KEK.unlink(missing_ok=True)
    for folder in (EXPORT, EXPORT.with_name("audit-export-tampered")):
        shutil.rmtree(folder, ignore_errors=True)


EXPORT = DEMO_ROOT / "audit-export"
SECRETS = DEMO_ROOT / "secrets"
# The demo workspace's key-encryption key: beside the password files, outside the workspace
# (a real one lives apart from the workspace and its backups; see docs/deploy.md, Keys).
KEK = SECRETS / "kek"
PEOPLE = {
    "avery": "admin",
    "blake": "admin",
    "ana": "analyst",
    "sam": "supervisor",
    "eve": "examiner",
    "eli": "examiner",
    "ada": "auditor",
}
REQUEST = [
    "--case", "2026-000042",
    "--offence", "robbery",
    "--purpose", "investigative_lead",
    "--agency", "Example City Police Department",
    "--unit", "Robbery",
]  # fmt: skip


def password_file(name: str) -> str:
    """A password for a demo user, in a 0600 file (never on a command line)."""
    SECRETS.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = SECRETS / f"{name}.password"
    if not path.exists():
        path.write_text(f"demo password for {name}, not for real use\n")
        path.chmod(0o600)
    return str(path)


def demo_policy() -> str:
    """The moratorium example, for demo photos and with two examiners to release a lead."""
    lines = []
    for line in example_policy_path("moratorium").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "source_types":
            line = 'source_types = ["demo"]  # demo: this workspace holds demo portraits only'
        elif key == "reviewers_to_release":
            line = "reviewers_to_release = 2  # demo: two examiners, to show independent review"
        lines.append(line)
    path = DEMO_ROOT / "demo-policy.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def as_user(name: str) -> None:
    """Log in as `name` (the CLI keeps one session per workspace and login name)."""
    candor("login", "--user", name, "--password-file", password_file(name), quiet=True)


def confirmed_by_second_admin(change_output: str) -> None:
    """The second admin confirms a change the first one requested."""
    change = json.loads(change_output)["change"]["id"]
    as_user("blake")
    candor("admin", "confirm", str(change))
    as_user("avery")


def set_up_people_and_policy() -> None:
    say("""Nobody can do anything in a new workspace. `candor bootstrap`, run on the machine
        itself, makes the first two admins; from then on every new user, role and policy
        change needs a second admin's confirmation.""")
    candor(
        "bootstrap",
        "--first", "avery", "--first-unit", "Records", "--first-certificate-ref", "FRT-001",
        "--first-certificate-expires", "2030-12-31",
        "--first-password-file", password_file("avery"),
        "--second", "blake", "--second-unit", "Records", "--second-certificate-ref", "FRT-002",
        "--second-certificate-expires", "2030-12-31",
        "--second-password-file", password_file("blake"),
    )  # fmt: skip
    as_user("avery")
    say("""The agency's written policy is a TOML file. This one is the shipped moratorium
        example (no searches for outside agencies, repeat searches only with approval),
        adapted to demo photos and two reviewers.""")
    confirmed_by_second_admin(candor("policy", "set", demo_policy(), "--json", quiet=True))
    for name, role in PEOPLE.items():
        if role == "admin":
            continue
        requested = candor(
            "user", "add", name, "--unit", "Robbery", "--role", role,
            "--certificate-ref", f"FRT-{name}", "--certificate-expires", "2030-12-31",
            "--password-file", password_file(name), "--json", quiet=True,
        )  # fmt: skip
        confirmed_by_second_admin(requested)
    candor("user", "list")


def search_id(output: str) -> str:
    return str(json.loads(output)["search_id"])


def main() -> None:
    console.print(Rule("Candor demo: accountable face search, end to end"))
    say(
        """Candor searches a lawfully held gallery for faces like the one in a probe photo.
        Every search is asked for by a named person for a stated case and purpose, checked
        against the agency's policy, reviewed by independent examiners, and recorded in a
        tamper-evident audit log. This demo uses two public-domain portraits shipped inside
        installed Python packages (astronaut Eileen Collins and Rear Admiral Grace Hopper)
        and variants made from them. Two people show the mechanics; they say nothing about
        accuracy."""
    )
    fresh_workspace()
    photos = prepare_photos()
    p = {name: str(path) for name, path in photos.items()}

    say("""A workspace is one folder with a fixed purpose. Demo data may only enter a 'demo'
        workspace, under the source type 'demo'. Every photo, crop and template in it is
        encrypted under keys wrapped by a key-encryption key kept outside the workspace
        (here .candor-demo/secrets/kek): without that file the workspace cannot be read.""")
    SECRETS.mkdir(mode=0o700, parents=True, exist_ok=True)
    SECRETS.chmod(0o700)
    candor("init", "--purpose", "demo", "--kek-file", str(KEK))
    set_up_people_and_policy()

    say("""Enrolment (an admin's job) records where each photo came from and on what
        authority it is held. The Collins portrait shows a second, false 'face' on her
        suit: bulk enrolment takes the largest face nearest the centre and records that.
        Enrolling the same image again changes nothing, and says so.""")
    candor("enrol", p["collins.png"], "--subject", "DEMO-0001", *PROVENANCE)
    candor("enrol", p["hopper.jpg"], "--subject", "DEMO-0002", *PROVENANCE)
    candor("enrol", p["hopper.jpg"], "--subject", "DEMO-0002", *PROVENANCE)

    as_user("ana")
    say("""Ana, an analyst, is asked by a neighbouring sheriff to run a photo. The policy
        forbids searches for outside agencies: the request is denied, with its reason, and
        the denial is recorded like everything else.""")
    outside = [*REQUEST[:6], "--agency", "Neighbouring County Sheriff", *REQUEST[8:]]
    candor("search", p["collins-probe.jpg"], *outside, expect_failure=True)
    say("""For her own unit's robbery case the search is allowed and runs at once. Ana does
        not see the candidates: they go to examiners for independent review.""")
    first = search_id(candor("search", p["collins-probe.jpg"], *REQUEST, "--json", quiet=True))
    candor("request", first)
    say("""Running the same photo again is a repeat search: it waits for a supervisor.""")
    repeat = search_id(candor("search", p["collins-probe.jpg"], *REQUEST, "--json", quiet=True))
    candor("request", repeat)
    as_user("sam")
    candor("approvals")
    candor("approve", repeat, "--reason", "new CCTV still attached to the case file")
    as_user("ana")
    candor("run", repeat)
    say("""A blurred photo is refused at the quality gate, with its reasons; a photo of two
        people is not searched until the analyst says which face is meant.""")
    candor("search", p["hopper-blurred.png"], *REQUEST, expect_failure=True)
    candor("search", p["two-people.jpg"], *REQUEST, expect_failure=True)

    as_user("eve")
    say("""Eve, an examiner, sees the candidate list (and that viewing is recorded). Scores
        are cosine similarities of the face templates; the threshold comes from the
        policy's target false positive rate and the gallery's size.""")
    candor("candidates", first)
    candor("review", first, "--candidate", "1", "--verdict", "possible_match",
           "--rationale", "hairline, brow and nose shape agree")  # fmt: skip
    say("""One examiner is not enough under this policy: release waits for a second.""")
    candor("release", first, "--candidate", "1", "--reason", "examined", expect_failure=True)
    as_user("eli")
    candor("review", first, "--candidate", "1", "--verdict", "possible_match",
           "--rationale", "ear and jaw line agree; no disagreeing feature")  # fmt: skip
    candor("release", first, "--candidate", "1", "--reason", "two examiners agree")
    as_user("ana")
    candor("leads", first)

    say("""Verification (1:1) is a request too, decided and recorded the same way.""")
    candor("verify", p["hopper.jpg"], p["hopper-probe.jpg"], *REQUEST)

    as_user("avery")
    say("""Expungement removes a person's images, crops, templates and index entries, and
        scrubs the database; the audit log keeps what was removed by id and hash only. It
        cannot be undone, so one admin asks with a reason and a second admin confirms.""")
    reason = "court order 2026/114"
    asked = candor("expunge", "DEMO-0002", "--yes", "--reason", reason, "--json", quiet=True)
    confirmed_by_second_admin(asked)

    as_user("ada")
    say("""Ada, an auditor, checks the log and exports it. The export holds every entry,
        the signed checkpoints and the public key: an outside body verifies it with
        Python and the `cryptography` package alone, without Candor's database.""")
    candor("audit", "verify")
    candor("audit", "export", str(EXPORT))
    _run(
        [sys.executable, "-m", "candor.audit.verifier", str(EXPORT)],
        "python -m candor.audit.verifier",
        (str(EXPORT),),
        False,
        False,
    )
    say("""If anyone changes one byte of one entry, the outside verifier names the entry.""")
    tampered = tamper_with_copy(EXPORT)
    _run(
        [sys.executable, "-m", "candor.audit.verifier", str(tampered)],
        "python -m candor.audit.verifier",
        (str(tampered),),
        True,
        False,
    )

    console.print(Rule("What you saw"))
    say(
        f"""A demo workspace at {WORKSPACE}: two admins bootstrapped, a policy and five
        users each confirmed by a second admin, two portraits enrolled with provenance, a
        search for an outside agency denied, a search run, a repeat search approved by a
        supervisor and run once, a blurred photo refused, two independent examiners
        releasing a lead marked 'investigative lead only', a verification, an
        expungement, and an audit export verified outside Candor, where one changed byte
        was caught. With two people, nothing here says anything about accuracy: see
        bench/results/ for figures measured on labelled data."""
    )
    say(
        """To start a real workspace: `candor init --home /srv/candor` (purpose
        operational; --kek-file names its key-encryption key, to be backed up apart from
        the workspace), `export CANDOR_HOME=/srv/candor`, `candor bootstrap ...` for the first
        two admins, `candor policy set your-policy.toml` (start from
        src/candor/policy/examples/), confirmed by the second admin, then users, then
        enrolment of lawfully held photos with their provenance. README.md has the steps."""
    )


def tamper_with_copy(export: Path) -> Path:
    """A copy of the export with one byte of one entry changed."""
    tampered = export.with_name("audit-export-tampered")
    shutil.copytree(export, tampered)
    entries = tampered / "entries.jsonl"
    data = bytearray(entries.read_bytes())
    position = data.index(b'"robbery"')
    data[position + 1 : position + 2] = b"R"
    entries.write_bytes(bytes(data))
    return tampered


if __name__ == "__main__":
    main()
