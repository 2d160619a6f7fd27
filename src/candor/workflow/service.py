"""Installing `candor serve` as a systemd service: the checks, the unit and its environment.

Installing is an act on the machine, not in a workspace: nothing is written to the
workspace's database or its audit log, so there is no `act` here. `plan_service` makes
every check and writes nothing; `install_service` then makes the user (when asked), hands
it the workspace and the KEK, and writes the files. A refusal leaves the machine as it was.

The service runs as its own unprivileged user, with the workspace and the key-encryption
key outside the code (docs/deploy.md, "Keys"), and under systemd's sandbox: the whole file
system read-only except the workspace (and the audit key's folder when it lives apart).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from candor.sealing import KeyFileError, key_fingerprint, read_key_file
from candor.store import NotAWorkspaceError, SchemaVersionError, StoreError, WorkspaceError
from candor.store.data_keys import kek_file_in_use, kek_path_from_env, kek_record
from candor.store.workspace import session_without_kek
from candor.workflow.errors import WorkflowError

DEFAULT_USER = "candor"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_UNIT_NAME = "candor.service"
# The service never sees these (ProtectHome=yes hides the first three, PrivateTmp=yes gives
# it /tmp and /var/tmp of its own): code, workspace or keys there would not be found.
HIDDEN_FROM_SERVICE = (
    Path("/home"),
    Path("/root"),
    Path("/run/user"),
    Path("/tmp"),  # noqa: S108 (named to be refused, not used)
    Path("/var/tmp"),  # noqa: S108
)
# What a unit file line holds as it is: no spaces, quotes, `%` specifiers, `$` or `\`.
_PLAIN = re.compile(r"[A-Za-z0-9/._+@:,=-]+")
_USERNAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_UNIT_NAME = re.compile(r"[A-Za-z0-9_.@-]+\.service")
_NOLOGIN = (Path("/usr/sbin/nologin"), Path("/sbin/nologin"), Path("/bin/false"))
# Unix permission bits for one class of user (owner, group, others), shifted to "others".
_READ, _WRITE, _SEARCH = 0o4, 0o2, 0o1


class ServiceInstallError(WorkflowError):
    """`candor install-service` refuses: one line naming the path, user or option, and what
    to do. Nothing has been changed."""


@dataclass(frozen=True)
class ServiceOptions:
    """What `candor install-service` was asked for."""

    home: Path
    user: str = DEFAULT_USER
    kek_file: Path | None = None  # default: the path the workspace recorded
    audit_key: Path | None = None  # CANDOR_AUDIT_KEY, when the signing key lives apart
    unit_dir: Path = DEFAULT_UNIT_DIR
    unit_name: str = DEFAULT_UNIT_NAME
    environment_file: Path | None = None  # the variables there instead of in the unit
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    idle_minutes: float = 30.0
    certfile: Path | None = None
    keyfile: Path | None = None
    create_user: bool = False
    force: bool = False
    command: tuple[str, ...] | None = None  # how to run candor; default: this installation's


@dataclass(frozen=True)
class ServicePlan:
    """What `install_service` will do; every check has passed."""

    user: str
    create_user: bool  # the user does not exist yet: useradd --system, then hand over
    hand_over: tuple[Path, ...]  # given to the new user (the workspace recursively)
    unit_path: Path
    unit_text: str
    environment_path: Path | None
    environment_text: str | None
    environment: dict[str, str]
    exec_start: tuple[str, ...]
    read_write_paths: tuple[Path, ...]
    kek_file: Path
    kek_fingerprint: str | None  # None: the database could not be read from here
    notes: tuple[str, ...] = field(default=())  # what was not checked, and why


@dataclass(frozen=True)
class _Account:
    """The service user as the permission checks see it; uid None: not made yet."""

    name: str
    uid: int | None
    gids: frozenset[int]


def plan_service(options: ServiceOptions) -> ServicePlan:
    """Check everything `install_service` needs and say what it will write; changes nothing.

    Refuses (ServiceInstallError) a folder that is not a workspace or one that still needs
    `candor upgrade`; a missing user (without --create-user, or not as root), root itself;
    a KEK file that is missing, not the workspace's, readable by anyone but the service
    user, kept in the workspace or the code; a workspace the user does not own or others
    may write; paths the service cannot reach or that a unit line cannot hold; an existing
    unit or environment file (without --force)."""
    home = _absolute(options.home)
    notes: list[str] = []
    _check_plain(home, "the workspace (--home)")
    _check_numbers(options)
    account = _account(options.user, create=options.create_user)
    command = options.command or default_command()
    code_root = Path(sys.prefix).absolute()
    fingerprint, recorded = _workspace_kek(home, notes)
    kek = _absolute(options.kek_file) if options.kek_file is not None else recorded
    if kek is None:
        raise ServiceInstallError(
            f"cannot read {home}'s database from this account to find its key-encryption "
            "key: pass --kek-file PATH (or set CANDOR_KEK_FILE)"
        )
    unit_path = _absolute(options.unit_dir) / options.unit_name
    environment_path = (
        _absolute(options.environment_file) if options.environment_file is not None else None
    )
    for path, what in (
        (kek, "the key-encryption key (--kek-file)"),
        (_absolute(Path(command[0])), "the candor command"),
        (unit_path, "the unit file"),
        *(((environment_path, "the environment file"),) if environment_path else ()),
    ):
        _check_plain(path, what)
    for path, what in ((home, "the workspace"), (kek, "the key-encryption key")):
        _check_visible(path, what)
    _check_visible(_absolute(Path(command[0])), "the candor command")

    # The workspace: the service writes it, nobody else may.
    _check_home(home, account, code_root)
    _check_kek(kek, account, home, code_root, fingerprint)
    read_write = [home]
    audit_key = None
    if options.audit_key is not None:
        audit_key = _absolute(options.audit_key)
        _check_plain(audit_key, "the audit signing key (--audit-key)")
        _check_visible(audit_key, "the audit signing key")
        if account.uid is None:
            raise ServiceInstallError(
                "--create-user with --audit-key: make the user first, then give it the "
                "signing key and its folder"
            )
        _check_private_file(audit_key, account, "the audit signing key (--audit-key)")
        if not _inside(audit_key, home):
            # Its witness is written beside it, under a lock on its folder.
            if not _may(audit_key.parent.stat(), account, _WRITE):
                raise ServiceInstallError(
                    f"the user {account.name} may not write {audit_key.parent}, where the "
                    f"audit log's witness is kept beside its key: chown {account.name}: "
                    f"{audit_key.parent}"
                )
            read_write.append(audit_key.parent)
    _check_command(command, account)
    _check_tls(options, account)
    _check_new_file(unit_path, "unit", force=options.force)
    if environment_path is not None:
        _check_new_file(environment_path, "environment", force=options.force)
        if environment_path.parent == unit_path.parent:
            raise ServiceInstallError(
                f"the environment file {environment_path} is in the unit folder; keep it "
                "elsewhere (/etc/candor/candor.env)"
            )
    if account.uid is None and os.geteuid() != 0:
        raise ServiceInstallError(
            f"--create-user makes the system user {account.name} with useradd: run as root"
        )

    environment = {
        "CANDOR_HOME": str(home),
        "CANDOR_KEK_FILE": str(kek),
        # The reports' charts (matplotlib) keep a font cache in ~/.config: the service's
        # private /tmp instead of a home it has none of, or of the workspace.
        "MPLCONFIGDIR": "/tmp/matplotlib",  # noqa: S108 (PrivateTmp: the service's own)
    }
    if audit_key is not None:
        environment["CANDOR_AUDIT_KEY"] = str(audit_key)
    exec_start = (*command, *serve_arguments(options))
    environment_text = (
        "".join(f"{name}={value}\n" for name, value in environment.items())
        if environment_path is not None
        else None
    )
    unit_text = unit_file_text(
        user=account.name,
        home=home,
        exec_start=exec_start,
        environment=environment,
        environment_path=environment_path,
        read_write_paths=read_write,
        port=options.port,
    )
    hand_over: tuple[Path, ...] = ()
    if account.uid is None:
        hand_over = (home, kek)
    return ServicePlan(
        user=account.name,
        create_user=account.uid is None,
        hand_over=hand_over,
        unit_path=unit_path,
        unit_text=unit_text,
        environment_path=environment_path,
        environment_text=environment_text,
        environment=environment,
        exec_start=exec_start,
        read_write_paths=tuple(read_write),
        kek_file=kek,
        kek_fingerprint=fingerprint,
        notes=tuple(notes),
    )


def install_service(plan: ServicePlan) -> None:
    """Make the user (when the plan says so), hand it the workspace and the keys, and write
    the environment file and the unit (each written to a temporary name, then renamed)."""
    if plan.create_user:
        shell = next((str(path) for path in _NOLOGIN if path.exists()), "/bin/false")
        try:
            subprocess.run(  # noqa: S603 (fixed arguments; the name passed _USERNAME)
                [
                    shutil.which("useradd") or "/usr/sbin/useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",  # Debian's home for a system user that has none
                    "--shell",
                    shell,
                    plan.user,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as error:
            raise ServiceInstallError(
                f"useradd could not make the user {plan.user}: {error.stderr.strip()}"
            ) from None
        account = pwd.getpwnam(plan.user)
        for path in plan.hand_over:
            _chown_tree(path, account.pw_uid, account.pw_gid)
    if plan.environment_path is not None and plan.environment_text is not None:
        # systemd reads it as root before it drops to the user; 0600, since an operator
        # adds secrets there (PGPASSWORD).
        _write_file(plan.environment_path, plan.environment_text, 0o600)
    _write_file(plan.unit_path, plan.unit_text, 0o644)


def default_command() -> tuple[str, ...]:
    """How the service runs this installation's candor: the `candor` script beside the
    interpreter (the virtual environment's bin/), else `python -m candor`. Not resolved:
    a virtual environment's python is a link, and the link is what makes it the venv's."""
    python = Path(sys.executable).absolute()
    script = python.parent / "candor"
    if script.is_file():
        return (str(script),)
    return (str(python), "-m", "candor")


def serve_arguments(options: ServiceOptions) -> tuple[str, ...]:
    """The `candor serve` part of ExecStart."""
    arguments = [
        "serve",
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--workers",
        str(options.workers),
        "--idle-minutes",
        f"{options.idle_minutes:g}",
    ]
    if options.certfile is not None and options.keyfile is not None:
        arguments += [
            "--certfile",
            str(_absolute(options.certfile)),
            "--keyfile",
            str(_absolute(options.keyfile)),
        ]
    return tuple(arguments)


def unit_file_text(
    *,
    user: str,
    home: Path,
    exec_start: Iterable[str],
    environment: dict[str, str],
    environment_path: Path | None,
    read_write_paths: Iterable[Path],
    port: int,
) -> str:
    """The systemd unit for `candor serve`."""
    if environment_path is not None:
        variables = f"EnvironmentFile={environment_path}\n"
    else:
        variables = "".join(f"Environment={name}={value}\n" for name, value in environment.items())
    # A port below 1024 needs the one capability that binds it; otherwise the service has none.
    capabilities = (
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"
        if port < 1024
        else "CapabilityBoundingSet=\n"
    )
    return (
        "# Written by `candor install-service`; docs/deploy.md explains each line.\n"
        "[Unit]\n"
        f"Description=Candor face search (workspace {home})\n"
        "Wants=network-online.target\n"
        # postgresql.service: a local database starts first (ignored when there is none).
        "After=network-online.target postgresql.service\n"
        "\n"
        "[Service]\n"
        "Type=exec\n"
        f"User={user}\n"
        f"Group={_primary_group(user)}\n"
        f"{variables}"
        f"ExecStart={' '.join(exec_start)}\n"
        "Restart=on-failure\n"
        "RestartSec=5s\n"
        "TimeoutStopSec=60s\n"
        "UMask=0077\n"
        "NoNewPrivileges=yes\n"
        "ProtectSystem=strict\n"
        f"ReadWritePaths={' '.join(str(path) for path in read_write_paths)}\n"
        "ProtectHome=yes\n"
        "PrivateTmp=yes\n"
        "PrivateDevices=yes\n"
        "ProtectKernelTunables=yes\n"
        "ProtectKernelModules=yes\n"
        "ProtectKernelLogs=yes\n"
        "ProtectControlGroups=yes\n"
        "ProtectClock=yes\n"
        "ProtectHostname=yes\n"
        "ProtectProc=invisible\n"
        "RestrictSUIDSGID=yes\n"
        "RestrictRealtime=yes\n"
        "RestrictNamespaces=yes\n"
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"
        "LockPersonality=yes\n"
        "SystemCallArchitectures=native\n"
        f"{capabilities}"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


# The checks --------------------------------------------------------------------------------


def _absolute(path: Path) -> Path:
    """The path made absolute and normalised, links left as they are."""
    return Path(os.path.abspath(Path(path).expanduser()))  # noqa: PTH100 (resolve follows links)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_plain(path: Path, what: str) -> None:
    if not _PLAIN.fullmatch(str(path)):
        raise ServiceInstallError(
            f"{what} {str(path)!r} has characters a unit file cannot hold as they are "
            "(spaces, quotes, %, $, \\): choose a plain path"
        )


def _check_visible(path: Path, what: str) -> None:
    for hidden in HIDDEN_FROM_SERVICE:
        if _inside(path, hidden):
            raise ServiceInstallError(
                f"{what} {path} is under {hidden}, which the service cannot see "
                "(ProtectHome=yes, PrivateTmp=yes): keep it under /srv, /opt, /var/lib or /etc"
            )


def _check_numbers(options: ServiceOptions) -> None:
    if not 1 <= options.port <= 65535:
        raise ServiceInstallError(f"--port must be from 1 to 65535, not {options.port}")
    if options.workers < 1:
        raise ServiceInstallError(f"--workers must be at least 1, not {options.workers}")
    if options.idle_minutes <= 0:
        raise ServiceInstallError("--idle-minutes must be above 0")
    if not _UNIT_NAME.fullmatch(options.unit_name):
        raise ServiceInstallError(
            f"--unit-name {options.unit_name!r} must be a plain name ending in .service"
        )
    try:
        ipaddress.ip_address(options.host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", options.host):
            raise ServiceInstallError(
                f"--host {options.host!r} is neither an IP address nor a host name"
            ) from None


def _account(name: str, *, create: bool) -> _Account:
    if not _USERNAME.fullmatch(name):
        raise ServiceInstallError(
            f"--user {name!r} is not a valid system user name (lower-case letters, digits, _ and -)"
        )
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if not create:
            raise ServiceInstallError(
                f"there is no user {name}: make it (useradd --system --user-group "
                f"--no-create-home --shell /usr/sbin/nologin {name}) or pass --create-user"
            ) from None
        return _Account(name, None, frozenset())
    if entry.pw_uid == 0:
        raise ServiceInstallError(f"the user {name} is root: the service runs unprivileged")
    groups = {entry.pw_gid} | {group.gr_gid for group in grp.getgrall() if name in group.gr_mem}
    return _Account(name, entry.pw_uid, frozenset(groups))


def _primary_group(user: str) -> str:
    """The user's own group; for a user not made yet, the one useradd --user-group makes."""
    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        return user


def _may(info: os.stat_result, account: _Account, bit: int) -> bool:
    """Whether the account may read, write or search (bit) what `info` describes."""
    if account.uid is not None and info.st_uid == account.uid:
        return bool(info.st_mode >> 6 & bit)
    if info.st_gid in account.gids:
        return bool(info.st_mode >> 3 & bit)
    return bool(info.st_mode & bit)


def _check_reachable(path: Path, account: _Account, what: str) -> None:
    """Every folder above `path` may be searched (entered) by the service user."""
    for folder in reversed(path.parents):
        if not _may(folder.stat(), account, _SEARCH):
            raise ServiceInstallError(
                f"the user {account.name} cannot reach {what} {path}: it may not enter "
                f"{folder} (chmod o+x {folder}, or give it to the user)"
            )


def _workspace_kek(home: Path, notes: list[str]) -> tuple[str | None, Path | None]:
    """The KEK fingerprint the workspace records (read without the KEK), and the file a
    process would read: $CANDOR_KEK_FILE, else the recorded path (as `load_kek` chooses).

    A PostgreSQL database this account cannot log in to (peer authentication lets only
    the service user in) is noted, not refused: the fingerprint then goes unchecked, and
    the file is $CANDOR_KEK_FILE or --kek-file."""
    if not home.is_dir():
        raise ServiceInstallError(f"the workspace {home} does not exist: make it with candor init")
    try:
        with session_without_kek(home) as session:
            record = kek_record(session)
    except (NotAWorkspaceError, SchemaVersionError) as error:
        raise ServiceInstallError(str(error).splitlines()[0]) from None
    except (WorkspaceError, SQLAlchemyError) as error:
        # The store turns a failure to connect into a WorkspaceError caused by the
        # driver's; any other fault of the folder is refused.
        if isinstance(error, WorkspaceError) and error.__cause__ is None:
            raise ServiceInstallError(str(error).splitlines()[0]) from None
        notes.append(
            f"the workspace's database could not be read from this account "
            f"({str(error).splitlines()[0]}): the KEK's fingerprint was not checked"
        )
        return None, kek_path_from_env()
    except StoreError as error:
        raise ServiceInstallError(str(error).splitlines()[0]) from None
    if record is None:
        raise ServiceInstallError(
            f"the workspace {home} has no key-encryption key yet: run `candor upgrade` first"
        )
    return record.fingerprint, kek_file_in_use(record)[0]


def _check_home(home: Path, account: _Account, code_root: Path) -> None:
    if _inside(home, code_root) or _inside(code_root, home):
        raise ServiceInstallError(
            f"the workspace {home} and the code {code_root} overlap: keep the workspace "
            "outside the installation (/srv/candor)"
        )
    _check_reachable(home, account, "the workspace")
    info = home.stat()
    if info.st_mode & 0o022:
        raise ServiceInstallError(
            f"the workspace {home} may be written by others (mode {stat.filemode(info.st_mode)}): "
            f"chmod 700 {home}"
        )
    if account.uid is None:
        return  # handed over to the new user
    # The folder and what `candor` writes at its top and in keys/: a command run as root
    # (candor upgrade, say) leaves files the service then cannot write.
    keys = home / "keys"
    entries = [home, *home.iterdir(), *(keys.iterdir() if keys.is_dir() else ())]
    for entry in entries:
        if entry.lstat().st_uid != account.uid:
            raise ServiceInstallError(
                f"{entry} is not owned by {account.name}, so the service could not write "
                f"it: chown -R {account.name}: {home}"
            )


def _check_private_file(path: Path, account: _Account, what: str) -> None:
    """A key file: a regular file the service user owns, nobody else may read."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise ServiceInstallError(f"{what} {path} does not exist") from None
    if not stat.S_ISREG(info.st_mode):
        raise ServiceInstallError(f"{what} {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ServiceInstallError(
            f"{what} {path} may be read by others (mode {stat.filemode(info.st_mode)}): "
            f"chmod 600 {path}"
        )
    if account.uid is not None and info.st_uid != account.uid:
        raise ServiceInstallError(
            f"{what} {path} is not owned by {account.name}, so the service cannot read it "
            f"(mode 0600): chown {account.name}: {path}"
        )
    _check_reachable(path, account, what)


def _check_kek(
    kek: Path, account: _Account, home: Path, code_root: Path, fingerprint: str | None
) -> None:
    what = "the key-encryption key"
    if _inside(kek, home):
        raise ServiceInstallError(
            f"{what} {kek} is inside the workspace: whoever copies the workspace would have "
            "both; keep it apart (/etc/candor/kek)"
        )
    if _inside(kek, code_root):
        raise ServiceInstallError(f"{what} {kek} is inside the code {code_root}: keep it apart")
    _check_private_file(kek, account, what)
    try:
        found = key_fingerprint(read_key_file(kek, what))
    except KeyFileError as error:
        raise ServiceInstallError(str(error)) from None
    if fingerprint is not None and found != fingerprint:
        raise ServiceInstallError(
            f"{what} {kek} (fingerprint {found}) is not the workspace's (fingerprint "
            f"{fingerprint}); `candor keys show` names the workspace's"
        )


def _check_command(command: tuple[str, ...], account: _Account) -> None:
    """The service user can run the command and the interpreter its script names, through
    every link (a virtual environment made from a Python under /root, pyenv's say, runs
    for root and for nobody else)."""
    program = _absolute(Path(command[0]))
    if not program.is_file():
        raise ServiceInstallError(f"the candor command {program} does not exist")
    interpreter = _script_interpreter(program)
    paths = [program, program.resolve()]
    if interpreter is not None:
        paths += [interpreter, interpreter.resolve()]
    for number, path in enumerate(paths):
        what = "the candor command" if number < 2 else "the interpreter of the candor command"
        try:
            _check_visible(path, what)
            _check_reachable(path, account, what)
        except ServiceInstallError as error:
            raise ServiceInstallError(
                f"{error}; install Candor in a virtual environment made from a Python the "
                "service user can run (python3 -m venv /opt/candor/venv)"
            ) from None
        info = path.stat()
        if not (_may(info, account, _READ) and _may(info, account, _SEARCH)):
            raise ServiceInstallError(f"the user {account.name} may not run {what} {path}")


def _script_interpreter(program: Path) -> Path | None:
    """The interpreter a script's `#!` line names; None for a program that is not a script."""
    with program.open("rb") as handle:
        first = handle.readline(4096)
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return Path(words[0]) if words and words[0].startswith("/") else None


def _check_tls(options: ServiceOptions, account: _Account) -> None:
    if (options.certfile is None) != (options.keyfile is None):
        raise ServiceInstallError("give both --certfile and --keyfile, or neither")
    if options.certfile is None or options.keyfile is None:
        return
    certificate, key = _absolute(options.certfile), _absolute(options.keyfile)
    for path, what in ((certificate, "the certificate"), (key, "the TLS key")):
        _check_plain(path, what)
        _check_visible(path, what)
    if not certificate.is_file():
        raise ServiceInstallError(f"the certificate {certificate} does not exist")
    _check_reachable(certificate, account, "the certificate")
    if account.uid is not None and not _may(certificate.stat(), account, _READ):
        raise ServiceInstallError(f"the user {account.name} may not read {certificate}")
    if account.uid is None:
        raise ServiceInstallError(
            "--create-user with --keyfile: make the user first, then give it the TLS key"
        )
    _check_private_file(key, account, "the TLS key (--keyfile)")


def _check_new_file(path: Path, what: str, *, force: bool) -> None:
    if not path.parent.is_dir():
        raise ServiceInstallError(f"the {what} folder {path.parent} does not exist")
    if (path.exists() or path.is_symlink()) and not force:
        raise ServiceInstallError(
            f"the {what} file {path} exists; pass --force to replace it (stop the service first)"
        )


# Writing --------------------------------------------------------------------------------


def _write_file(path: Path, text: str, mode: int) -> None:
    """Written whole or not at all: a temporary file beside it, then renamed over it."""
    temporary = path.with_name(f".{path.name}.candor-tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(mode)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    if path.is_dir() and not path.is_symlink():
        for folder, folders, files in os.walk(path):
            for name in (*folders, *files):
                os.chown(Path(folder) / name, uid, gid, follow_symlinks=False)


__all__ = [
    "DEFAULT_UNIT_DIR",
    "DEFAULT_UNIT_NAME",
    "DEFAULT_USER",
    "ServiceInstallError",
    "ServiceOptions",
    "ServicePlan",
    "default_command",
    "install_service",
    "plan_service",
    "serve_arguments",
    "unit_file_text",
]
