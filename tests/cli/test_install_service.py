"""`candor install-service`: the unit it writes, what it refuses (changing nothing), and
the unit's command line run as its own unprivileged user until the server answers.

What these tests cannot check: systemd does not run here (nor in CI's container), so the
sandbox the unit asks for (ProtectSystem=strict with the workspace as the only
ReadWritePaths, ProtectHome, PrivateTmp, NoNewPrivileges, no capabilities) is checked as
written, and by `systemd-analyze verify` where it is installed, but not enforced: that the
service cannot write outside its workspace is systemd's part, not shown here. What runs
for real is the unit's ExecStart, as the unit's user, with the unit's Environment only.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candor.cli.app import app
from candor.store import WorkspaceError
from candor.workflow import service

RELEASE_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "workspace-95e4ed1.tar.gz"
ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI") == "true"
runner = CliRunner()


@dataclass(frozen=True)
class Installation:
    """A workspace, its KEK outside it and a unit folder, all owned as a deployment would."""

    base: Path
    home: Path
    kek: Path
    user: str


def _useradd(name: str, home: Path) -> None:
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            str(home),
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
        capture_output=True,
    )


def _userdel(name: str) -> None:
    """Remove the throw-away user; a process of it still ending makes userdel refuse, so
    try again, and at last remove it anyway."""
    for attempt in range(20):
        if subprocess.run(["userdel", name], check=False, capture_output=True).returncode == 0:
            return
        time.sleep(0.5 if attempt < 19 else 0)
    subprocess.run(["userdel", "--force", name], check=False, capture_output=True)


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for folder, folders, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in (*folders, *files):
            os.chown(Path(folder) / name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _init(base: Path, user: str) -> tuple[Path, Path]:
    home, kek = base / "ws", base / "secrets" / "kek"
    result = runner.invoke(app, ["init", "--home", str(home), "--kek-file", str(kek), "--json"])
    assert result.exit_code == 0, result.stderr
    if ROOT:
        _chown_tree(home, user)
        _chown_tree(kek.parent, user)
    return home, kek


@pytest.fixture(scope="module")
def installation() -> Iterator[Installation]:
    """As root, a throw-away system user (removed afterwards); otherwise the tests' own user,
    which owns the files it makes. Outside pytest's tmp folder: that one is closed to other
    users (0700), and a service user must be able to enter the folders above its files."""
    base = Path(tempfile.mkdtemp(prefix="candor-service-"))
    base.chmod(0o711)
    user = f"candorsvc{secrets.token_hex(3)}" if ROOT else pwd.getpwuid(os.getuid()).pw_name
    if ROOT:
        _useradd(user, base / "ws")
    try:
        home, kek = _init(base, user)
        yield Installation(base, home, kek, user)
    finally:
        if ROOT:
            _userdel(user)
        shutil.rmtree(base)


@pytest.fixture(scope="module")
def candor_command(installation: Installation) -> tuple[str, ...]:
    """How the service runs candor: this installation's own command when the service user
    can run it; otherwise (this checkout's virtual environment made from a Python under
    /root, say, which install-service refuses) a virtual environment made here from the
    system's Python of the same version, loading this installation's packages."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "HIDDEN_FROM_SERVICE", ())
        checked = runner.invoke(
            app,
            [
                "install-service",
                "--home",
                str(installation.home),
                "--user",
                installation.user,
                "--unit-dir",
                str(installation.base),
                "--dry-run",
            ],
        )
    if checked.exit_code == 0:
        return service.default_command()
    assert "candor command" in checked.stderr, checked.stderr
    python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not python.is_file():
        message = f"the service user cannot run this checkout's Python, and there is no {python}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    venv = installation.base / "venv"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = sysconfig.get_paths()["purelib"]
    site = venv / "lib" / python.name / "site-packages"
    (site / "candor-installation.pth").write_text(f"import site; site.addsitedir({packages!r})\n")
    script = venv / "bin" / "candor"
    script.write_text(
        f"#!{venv / 'bin' / 'python'}\n"
        # As pip writes a console script: Uvicorn's workers import it again, and must not run it.
        "import sys\nfrom candor.cli.app import main\n"
        'if __name__ == "__main__":\n    sys.exit(main())\n'
    )
    script.chmod(0o755)
    return (str(script),)


@pytest.fixture(autouse=True)
def _service_can_run(monkeypatch: pytest.MonkeyPatch, candor_command: tuple[str, ...]) -> None:
    """The tests' files are under /tmp, which a real service would not see (PrivateTmp;
    `test_refuses_paths_the_service_cannot_see` checks that refusal with the real list),
    and the service runs `candor_command`."""
    monkeypatch.setattr(service, "HIDDEN_FROM_SERVICE", ())
    monkeypatch.setattr(service, "default_command", lambda: candor_command)


@pytest.fixture
def units(installation: Installation) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="units-", dir=installation.base))
    yield folder
    shutil.rmtree(folder)


def install(
    installation: Installation, units: Path, *args: str
) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(
        app,
        [
            "install-service",
            "--home",
            str(installation.home),
            "--user",
            installation.user,
            "--unit-dir",
            str(units),
            *args,
            "--json",
        ],
    )
    answer = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, answer, result.stderr


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as systemd reads it: sections of keys, each key's values in order (a
    key may repeat, as Environment= does, which configparser refuses)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a key outside any section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def snapshot(*roots: Path) -> dict[str, tuple[int, ...]]:
    """Every file and folder under the roots: mode and owner; a file's size and modification
    time too (reading the database makes and removes SQLite's -wal and -shm files beside
    it, so a folder's own modification time may move while nothing in it does)."""
    found: dict[str, tuple[int, ...]] = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            found[str(path)] = (info.st_mode, info.st_uid, info.st_gid) + (
                () if path.is_dir() else (info.st_size, info.st_mtime_ns)
            )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_unit_runs_candor_serve_as_its_user_in_a_sandbox(
    installation: Installation, units: Path
) -> None:
    code, answer, err = install(installation, units, "--port", "8123", "--workers", "2")
    assert code == 0, err
    unit_path = units / "candor.service"
    assert answer["unit_path"] == str(unit_path)
    assert stat.S_IMODE(unit_path.stat().st_mode) == 0o644
    unit = parse_unit(unit_path.read_text())
    serve = unit["Service"]
    assert serve["User"] == [installation.user]
    assert serve["Environment"] == [
        f"CANDOR_HOME={installation.home}",
        f"CANDOR_KEK_FILE={installation.kek}",
        "MPLCONFIGDIR=/tmp/matplotlib",
    ]
    command = serve["ExecStart"][0].split()
    assert Path(command[0]).name in {"candor", "python", "python3"}
    assert command[command.index("serve") :] == [
        "serve", "--host", "127.0.0.1", "--port", "8123", "--workers", "2",
        "--idle-minutes", "30",
    ]  # fmt: skip
    assert serve["Restart"] == ["on-failure"]
    # The sandbox: the whole file system read-only but the workspace; no privileges.
    assert serve["ProtectSystem"] == ["strict"]
    assert serve["ReadWritePaths"] == [str(installation.home)]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert serve[key] == ["yes"], key
    assert serve["CapabilityBoundingSet"] == [""]
    assert serve["UMask"] == ["0077"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]

    # Never replaced without --force; with it, replaced.
    before = unit_path.read_text()
    code, answer, err = install(installation, units, "--port", "9000")
    assert code == 1 and "--force" in err and unit_path.read_text() == before
    code, answer, err = install(installation, units, "--port", "9000", "--force")
    assert code == 0, err
    assert "--port 9000" in unit_path.read_text()


def test_dry_run_prints_the_unit_and_writes_nothing(
    installation: Installation, units: Path
) -> None:
    result = runner.invoke(
        app,
        [
            "install-service",
            "--home",
            str(installation.home),
            "--user",
            installation.user,
            "--unit-dir",
            str(units),
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "[Service]" in result.stdout and f"User={installation.user}" in result.stdout
    assert list(units.iterdir()) == []


def test_an_environment_file_holds_the_variables(installation: Installation, units: Path) -> None:
    environment = installation.base / f"env-{secrets.token_hex(3)}"
    code, _, err = install(installation, units, "--environment-file", str(environment))
    assert code == 0, err
    serve = parse_unit((units / "candor.service").read_text())["Service"]
    assert serve["EnvironmentFile"] == [str(environment)]
    assert "Environment" not in serve
    assert stat.S_IMODE(environment.stat().st_mode) == 0o600  # PGPASSWORD may go there
    assert environment.read_text().splitlines() == [
        f"CANDOR_HOME={installation.home}",
        f"CANDOR_KEK_FILE={installation.kek}",
        "MPLCONFIGDIR=/tmp/matplotlib",
    ]
    environment.unlink()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_reads_every_line_of_the_unit(installation: Installation, units: Path) -> None:
    code, _, err = install(installation, units, "--port", "443")  # a capability, too
    assert code == 0, err
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(units / "candor.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    # It warns about what it cannot judge outside a running system (the user, for one); it
    # must find no key it does not know and no bad value.
    problems = [
        line
        for line in checked.stderr.splitlines()
        if "Unknown" in line or "Failed to parse" in line or "Invalid" in line
    ]
    assert checked.returncode == 0 and problems == [], checked.stderr


def _copy_key(installation: Installation, name: str, mode: int) -> Path:
    copy = installation.kek.parent / name
    shutil.copyfile(installation.kek, copy)
    copy.chmod(mode)
    if ROOT:
        entry = pwd.getpwnam(installation.user)
        os.chown(copy, entry.pw_uid, entry.pw_gid)
    return copy


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not a workspace", "is not a Candor workspace"),
        ("no such folder", "does not exist"),
        ("world-readable KEK", "may be read by others"),
        ("another workspace's KEK", "is not the workspace's"),
        ("KEK inside the workspace", "is inside the workspace"),
        ("no such user", "there is no user"),
        ("root", "the service runs unprivileged"),
        ("a space in the path", "cannot hold"),
        ("port out of range", "--port must be"),
        ("half the TLS pair", "both --certfile and --keyfile"),
        ("workspace others may write", "may be written by others"),
        ("unit folder missing", "folder"),
        ("a workspace of an older release", "candor upgrade"),
    ],
)
def test_refusals_name_the_problem_and_change_nothing(
    installation: Installation, units: Path, case: str, expected: str
) -> None:
    home = installation.home
    args: list[str] = []
    user: str | None = None
    made: list[Path] = []
    if case == "not a workspace":
        home = installation.base / f"empty-{secrets.token_hex(3)}"
        home.mkdir()
        made.append(home)
    elif case == "no such folder":
        home = installation.base / "missing"
    elif case == "world-readable KEK":
        made.append(_copy_key(installation, "open.kek", 0o644))
        args += ["--kek-file", str(made[-1])]
    elif case == "another workspace's KEK":
        other = installation.kek.parent / "other.kek"
        other.write_text(secrets.token_hex(32) + "\n")
        other.chmod(0o600)
        if ROOT:
            os.chown(other, pwd.getpwnam(installation.user).pw_uid, -1)
        made.append(other)
        args += ["--kek-file", str(other)]
    elif case == "KEK inside the workspace":
        copy = _copy_key(installation, "inside.kek", 0o600)
        inside = home / "inside.kek"
        copy.rename(inside)
        made.append(inside)
        args += ["--kek-file", str(inside)]
    elif case == "no such user":
        user = "candor-nobody-here"
    elif case == "root":
        user = "root"
    elif case == "a space in the path":
        home = installation.base / "a workspace"
    elif case == "port out of range":
        args += ["--port", "70000"]
    elif case == "half the TLS pair":
        args += ["--certfile", str(installation.kek)]
    elif case == "workspace others may write":
        home.chmod(0o777)
    elif case == "unit folder missing":
        args += ["--unit-dir", str(units / "absent")]
    elif case == "a workspace of an older release":
        release = installation.base / f"release-{secrets.token_hex(3)}"
        with tarfile.open(RELEASE_FIXTURE) as archive:
            archive.extractall(release, filter="data")
        made.append(release)
        home = release / "workspace"
    before = snapshot(installation.base)
    try:
        result = runner.invoke(
            app,
            [
                "install-service",
                "--home",
                str(home),
                "--user",
                user or installation.user,
                "--unit-dir",
                str(units),
                *args,
            ],
        )
        after = snapshot(installation.base)
    finally:
        home.chmod(0o700) if case == "workspace others may write" else None
        for path in made:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert result.exit_code == 1, result.stdout
    message = result.stderr.strip()
    assert expected in message, message
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert after == before  # nothing written, moved or re-owned
    assert list(units.iterdir()) == []


def test_a_database_this_account_cannot_open_leaves_the_fingerprint_unchecked(
    installation: Installation, units: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL workspace with peer authentication lets only the service user in: the
    installer (root) says what it could not check, and needs the KEK's path from it."""

    def refused(home: Path) -> object:
        try:
            raise OSError("peer authentication failed for user root")
        except OSError as cause:
            raise WorkspaceError(
                "cannot connect to the workspace's PostgreSQL database: peer authentication failed"
            ) from cause

    monkeypatch.setattr(service, "session_without_kek", refused)
    monkeypatch.delenv("CANDOR_KEK_FILE", raising=False)
    code, _, err = install(installation, units)
    assert code == 1 and "pass --kek-file" in err
    assert list(units.iterdir()) == []
    code, answer, err = install(installation, units, "--kek-file", str(installation.kek))
    assert code == 0, err
    notes = answer["notes"]
    assert isinstance(notes, list) and "fingerprint was not checked" in notes[0]


def test_an_audit_key_apart_gets_its_folder_writable(
    installation: Installation, units: Path
) -> None:
    folder = installation.base / f"audit-{secrets.token_hex(3)}"
    folder.mkdir(mode=0o700)
    key = folder / "audit-signing.key"
    shutil.copyfile(installation.home / "keys" / "audit-signing.key", key)
    key.chmod(0o600)
    if ROOT:
        entry = pwd.getpwnam(installation.user)
        for path in (folder, key):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        code, _, err = install(installation, units, "--audit-key", str(key))
        assert code == 0, err
        serve = parse_unit((units / "candor.service").read_text())["Service"]
        assert f"CANDOR_AUDIT_KEY={key}" in serve["Environment"]
        assert serve["ReadWritePaths"] == [f"{installation.home} {folder}"]
    finally:
        shutil.rmtree(folder)


def test_refuses_paths_the_service_cannot_see(
    installation: Installation, units: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "HIDDEN_FROM_SERVICE", (installation.base,))
    code, _, err = install(installation, units)
    assert code == 1 and "which the service cannot see" in err
    assert list(units.iterdir()) == []


def test_refuses_a_command_whose_interpreter_the_user_cannot_reach(
    installation: Installation, units: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virtual environment made from a Python in a closed folder (pyenv's under /root):
    its `candor` script is readable, but the interpreter it names cannot be run."""
    closed = installation.base / f"closed-{secrets.token_hex(3)}"
    closed.mkdir(mode=0o700)
    (closed / "python3").symlink_to(sys.executable)
    script = installation.base / f"candor-{secrets.token_hex(3)}"
    script.write_text(f"#!{closed / 'python3'}\nimport candor\n")
    script.chmod(0o755)
    closed.chmod(0o000)  # not even its owner may enter
    monkeypatch.setattr(service, "default_command", lambda: (str(script),))
    try:
        code, _, err = install(installation, units)
    finally:
        closed.chmod(0o700)
        shutil.rmtree(closed)
        script.unlink()
    assert code == 1
    assert f"cannot reach the interpreter of the candor command {closed / 'python3'}" in err
    assert "python3 -m venv" in err
    assert list(units.iterdir()) == []


@pytest.mark.skipif(not ROOT, reason="only root can take files from another user")
def test_refuses_a_workspace_the_user_does_not_own(installation: Installation, units: Path) -> None:
    marker = installation.home / "candor-workspace.json"
    os.chown(marker, 0, 0)  # as a command run as root leaves what it writes
    try:
        code, _, err = install(installation, units)
    finally:
        entry = pwd.getpwnam(installation.user)
        os.chown(marker, entry.pw_uid, entry.pw_gid)
    assert code == 1 and f"chown -R {installation.user}:" in err
    assert list(units.iterdir()) == []


@pytest.mark.skipif(not ROOT, reason="useradd needs root")
def test_create_user_makes_a_system_user_and_hands_it_the_workspace(
    installation: Installation, units: Path
) -> None:
    base = Path(tempfile.mkdtemp(prefix="made-", dir=installation.base))
    base.chmod(0o711)
    name = f"candormade{secrets.token_hex(3)}"
    try:
        home, kek = _init(base, "root")
        kek.parent.chmod(0o711)
        arguments = ["install-service", "--home", str(home), "--user", name]
        arguments += ["--kek-file", str(kek), "--unit-dir", str(units), "--create-user"]
        dry = runner.invoke(app, [*arguments, "--dry-run"])
        assert dry.exit_code == 0, dry.stderr
        assert f"not done (--dry-run): useradd --system {name}" in dry.stdout
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        result = runner.invoke(app, [*arguments, "--json"])
        assert result.exit_code == 0, result.stderr
        entry = pwd.getpwnam(name)
        assert entry.pw_uid != 0 and entry.pw_shell.endswith(("nologin", "false"))
        assert {path.stat().st_uid for path in [home, *home.rglob("*"), kek]} == {entry.pw_uid}
        assert f"User={name}" in (units / "candor.service").read_text()
    finally:
        _userdel(name)
        shutil.rmtree(base)


@pytest.mark.skipif(not ROOT and not IN_CI, reason="runs the service as another user: root only")
@pytest.mark.sqlite_only(
    reason="the service user opens the workspace's SQLite file; the test's PostgreSQL cluster "
    "takes connections from the user that started it only"
)
def test_the_units_command_line_serves_as_its_user(installation: Installation, units: Path) -> None:
    """ExecStart, run as User= with only the unit's Environment (and what systemd itself
    sets), answers the login page; then stopped. Not checked (no systemd here): the
    sandbox lines, which systemd would apply around this same command."""
    assert ROOT, "CI runs as root: this test must run there"
    port = free_port()
    # Two workers, as a service runs: Uvicorn starts them by importing the command again.
    code, _, err = install(installation, units, "--port", str(port), "--workers", "2")
    assert code == 0, err
    serve = parse_unit((units / "candor.service").read_text())["Service"]
    entry = pwd.getpwnam(serve["User"][0])
    environment = {
        # What systemd gives a service with User=, then the unit's own variables.
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": entry.pw_dir,
        "USER": entry.pw_name,
        "LOGNAME": entry.pw_name,
        **dict(line.split("=", 1) for line in serve["Environment"]),
    }
    command = serve["ExecStart"][0].split()
    # setpriv switches and execs, as systemd does (runuser would stay behind, as root).
    as_user = [
        "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--",
    ]  # fmt: skip
    log = installation.base / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [*as_user, *command],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped with everything it started
        )
    try:
        status = _wait_for_login_page(port, server)
        assert status == 200, log.read_text()
        # Every process of the service runs as the service user, none as root.
        owners = {
            line.split()[1]
            for pid in _group_pids(server.pid)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        }
        assert owners == {str(entry.pw_uid)}, owners
    finally:
        _stop(server)
    # What it wrote in the workspace is its own.
    assert {path.lstat().st_uid for path in installation.home.rglob("*")} == {entry.pw_uid}


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (it and what it started), as systemd stops a
    service; SIGKILL if it has not ended after a minute."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal_number)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the whole group, job runner too, is gone
            server.poll()
            try:
                os.killpg(server.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    server.wait()


def _wait_for_login_page(port: int, server: subprocess.Popen[bytes]) -> int:
    """The login page's status once the server answers (the face engine loads first)."""
    deadline = time.monotonic() + 180  # a loaded 2-core machine; not a timing assertion
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return -server.returncode
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as page:
                status: int = page.status
                return status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            time.sleep(0.5)
    return 0


def _group_pids(group: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == group:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids
