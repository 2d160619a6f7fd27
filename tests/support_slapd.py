"""A throw-away OpenLDAP server for the directory tests: Debian's slapd, our own folder.

`ThrowawaySlapd().start()` writes a cn=config of its own (mdb database, suffix
dc=candor,dc=test, the ppolicy overlay, a small schema with Active Directory's
`sAMAccountName` and `userAccountControl`) with slapadd into a temporary folder, makes a
self-signed CA and a server certificate for 127.0.0.1 and localhost with `cryptography`,
and starts `/usr/sbin/slapd` listening on two free loopback ports: plain LDAP (StartTLS
offered) and LDAPS. Run as root (as CI is), slapd drops to Debian's unprivileged
`openldap` user (else `nobody`); otherwise it runs as the invoking user. `stop()` ends it
and deletes the folder.

The directory holds the base entries, a read-only service account (`SERVICE_DN`, its
password in a file outside any workspace, mode 0600) and nothing else: tests add people
and groups with the helpers. A person is disabled the two ways candor.directory knows:
OpenLDAP's ppolicy lock (`pwdAccountLockedTime`, which slapd enforces at bind too) and
Active Directory's `userAccountControl` bit 2 (ACCOUNTDISABLE).

slapd runs with `olcAllows: bind_anon_dn`, as Active Directory does by default: a simple
bind with a DN and an empty password succeeds as an anonymous bind. That is the hole the
client's empty-password rule closes, and the tests show both. slapd logs its operations
(stats level) to `slapd.log` in the folder; `binds_for(dn)` counts the BINDs it saw.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection, Server

from candor.directory.escaping import escape_dn_value

SLAPD: Final = Path("/usr/sbin/slapd")
SLAPADD: Final = Path("/usr/sbin/slapadd")
MODULES: Final = Path("/usr/lib/ldap")
SCHEMA: Final = Path("/etc/ldap/schema")
SUFFIX: Final = "dc=candor,dc=test"
PEOPLE: Final = f"ou=people,{SUFFIX}"
GROUPS: Final = f"ou=groups,{SUFFIX}"
ADMIN_DN: Final = f"cn=admin,{SUFFIX}"
SERVICE_DN: Final = f"cn=candor-service,ou=services,{SUFFIX}"
# ppolicy's "locked by an administrator, for good" (draft-behera-ldap-password-policy).
LOCKED_FOR_GOOD: Final = "000001010000Z"
# Active Directory's userAccountControl: NORMAL_ACCOUNT (512), ACCOUNTDISABLE is bit 2.
AD_NORMAL_ACCOUNT: Final = 512
AD_ACCOUNT_DISABLED: Final = 2
SERVER_USERS: Final = ("openldap", "nobody")
START_SECONDS: Final = 20.0

# Active Directory's two attributes (Microsoft's OIDs) on an auxiliary class of our own
# (OpenLDAP's experimental arc): enough to test the sAMAccountName and userAccountControl
# conventions without AD's whole schema (msuser.ldif needs nTSecurityDescriptor & co).
AD_SCHEMA: Final = """\
dn: cn=activedirectory,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: activedirectory
olcAttributeTypes: ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
olcAttributeTypes: ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
olcObjectClasses: ( 1.3.6.1.4.1.4203.666.11.1717.1 NAME 'candorTestADAccount'
  AUXILIARY MAY ( userAccountControl $ sAMAccountName ) )
"""


class SlapdUnavailableError(RuntimeError):
    """Debian's slapd is not installed, or it could not start here."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _self_signed_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Candor test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    cert_file = folder / "server.pem"
    key_file = folder / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


class ThrowawaySlapd:
    """One slapd in a temporary folder, on two loopback ports, for one test module or run."""

    def __init__(self) -> None:
        for tool in (SLAPD, SLAPADD):
            if not tool.is_file():
                raise SlapdUnavailableError(
                    f"OpenLDAP's server is not installed ({tool} is missing: apt-get install "
                    "slapd ldap-utils; `make test` does this when run as root)"
                )
        self.root = Path(tempfile.mkdtemp(prefix="candor-slapd-"))
        self.root.chmod(0o755)
        self._run_as = self._server_user()
        self.port = free_port()
        self.ldaps_port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.ldaps_port}"
        # The same server at an address its certificate does not name (all of 127/8 is
        # loopback on Linux): a client that checks the name must refuse it.
        self.misnamed_ldaps_url = f"ldaps://127.0.0.2:{self.ldaps_port}"
        self.admin_password = secrets.token_urlsafe(18)
        self.service_password = secrets.token_urlsafe(18)
        # Outside any workspace, readable by its owner only, as docs/directory.md asks.
        self.service_password_file = self.root / "service-password"
        self.log = self.root / "slapd.log"
        self.ca_file = self.root / "ca.pem"
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: Connection | None = None
        self._names = itertools.count(1)

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in SERVER_USERS:
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise SlapdUnavailableError(
            f"running as root, and there is no unprivileged user ({', '.join(SERVER_USERS)}) "
            "to run slapd as"
        )

    def _config_ldif(self, cert_file: Path, key_file: Path) -> str:
        data = self.root / "data"
        schemas = "\n".join(
            f"include: file://{SCHEMA / name}.ldif" for name in ("core", "cosine", "inetorgperson")
        )
        return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.root}/run/slapd.pid
olcArgsFile: {self.root}/run/slapd.args
olcAllows: bind_anon_dn
olcLogLevel: stats
olcTLSCACertificateFile: {self.ca_file}
olcTLSCertificateFile: {cert_file}
olcTLSCertificateKeyFile: {key_file}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULES}
olcModuleLoad: back_mdb
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}

{AD_SCHEMA}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {self.admin_password}
olcDbDirectory: {data}
olcDbMaxSize: 33554432
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid,cn,member eq
olcAccess: {{0}}to attrs=userPassword by self =xw by anonymous auth by * none
olcAccess: {{1}}to * by dn.exact="{SERVICE_DN}" read by self read by * none

dn: olcOverlay={{0}}ppolicy,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {{0}}ppolicy
olcPPolicyDefault: cn=default,ou=policies,{SUFFIX}
olcPPolicyHashCleartext: TRUE
"""

    def _data_ldif(self) -> str:
        return f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: candor
o: Candor test directory

dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: {GROUPS}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{SUFFIX}
objectClass: organizationalUnit
ou: services

dn: ou=policies,{SUFFIX}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{SUFFIX}
objectClass: applicationProcess
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE

dn: {SERVICE_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: candor-service
userPassword: {self.service_password}
"""

    def _slapadd(self, config: Path, database: int, ldif: str, name: str) -> None:
        path = self.root / name
        path.write_text(ldif)
        completed = subprocess.run(
            [str(SLAPADD), "-F", str(config), "-n", str(database), "-l", str(path), "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        path.unlink()
        if completed.returncode != 0:
            raise SlapdUnavailableError(
                f"slapadd of {name} failed ({completed.returncode}): {completed.stderr.strip()}"
            )

    def start(self) -> ThrowawaySlapd:
        """Write the configuration and the base entries, start slapd, wait until it answers."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        config = self.root / "config"
        config.mkdir()
        (self.root / "data").mkdir()
        (self.root / "run").mkdir()
        self._self_signed()
        self._slapadd(config, 0, self._config_ldif(*self._server_tls), "config.ldif")
        self._slapadd(config, 1, self._data_ldif(), "data.ldif")
        self.service_password_file.write_text(self.service_password + "\n")
        self.service_password_file.chmod(0o600)
        argv = [
            str(SLAPD),
            "-d", "stats",
            "-h", f"{self.url}/ {self.ldaps_url}/ {self.misnamed_ldaps_url}/",
            "-F", str(config),
        ]  # fmt: skip
        if self._run_as is not None:
            for path in (self.root / "data", self.root / "run", config, *self._server_tls):
                self._chown_tree(path)
            argv += ["-u", self._run_as.pw_name, "-g", str(self._run_as.pw_gid)]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait_until_answering()

    def _self_signed(self) -> None:
        _ca, cert_file, key_file = _self_signed_tls(self.root)
        self._server_tls = (cert_file, key_file)

    def _chown_tree(self, path: Path) -> None:
        assert self._run_as is not None
        paths = [path, *path.rglob("*")] if path.is_dir() else [path]
        for each in paths:
            os.chown(each, self._run_as.pw_uid, self._run_as.pw_gid)

    def _wait_until_answering(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_SECONDS
        pending = {self.port, self.ldaps_port}
        while pending:
            if self._process.poll() is not None:
                self._fail(f"slapd exited with {self._process.returncode}")
            for port in sorted(pending):
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.5),
                ):
                    pending.discard(port)
            if pending and time.monotonic() > deadline:
                self._fail(f"slapd did not answer on {sorted(pending)} in {START_SECONDS:.0f} s")
            if pending:
                time.sleep(0.05)

    def _fail(self, what: str) -> None:
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.is_file() else ""
        self.stop()
        raise SlapdUnavailableError(f"{what}: {tail.strip()}")

    def stop(self) -> None:
        """Stop slapd and delete its folder."""
        try:
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    self._admin.unbind()
                self._admin = None
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        finally:
            self._process = None
            shutil.rmtree(self.root, ignore_errors=True)

    # -- the directory's content -------------------------------------------------------------

    def unique(self, prefix: str) -> str:
        """A name no other test of this process uses (the server lives for the whole run)."""
        return f"{prefix}{next(self._names)}"

    def admin(self) -> Connection:
        """A connection bound as the root DN (the tests' administrator, not Candor's)."""
        if self._admin is None or self._admin.closed:
            self._admin = Connection(
                Server("127.0.0.1", port=self.port, connect_timeout=5),
                user=ADMIN_DN,
                password=self.admin_password,
                auto_bind=True,
                raise_exceptions=True,
                receive_timeout=10,
            )
        return self._admin

    def add_person(
        self,
        uid: str,
        password: str,
        *,
        cn: str | None = None,
        display_name: str | None = None,
        sam_account_name: str | None = None,
        user_account_control: int | None = None,
    ) -> str:
        """Add a person under ou=people (RDN uid=..., escaped by RFC 4514); their DN.

        `sam_account_name` / `user_account_control` add Active Directory's attributes."""
        dn = f"uid={escape_dn_value(uid)},{PEOPLE}"
        attributes: dict[str, object] = {
            "uid": uid,
            "cn": cn or uid,
            "sn": cn or uid,
            "userPassword": password,
        }
        classes = ["inetOrgPerson"]
        if display_name is not None:
            attributes["displayName"] = display_name
        if sam_account_name is not None or user_account_control is not None:
            classes.append("candorTestADAccount")
        if sam_account_name is not None:
            attributes["sAMAccountName"] = sam_account_name
        if user_account_control is not None:
            attributes["userAccountControl"] = str(user_account_control)
        self.admin().add(dn, classes, attributes)
        return dn

    def add_group(self, cn: str, members: tuple[str, ...] = ()) -> str:
        """Add a groupOfNames under ou=groups; its DN. Every group also holds the suffix as
        a member (groupOfNames needs one, also when its last person leaves), which no
        person ever is."""
        dn = f"cn={escape_dn_value(cn)},{GROUPS}"
        self.admin().add(dn, ["groupOfNames"], {"cn": cn, "member": [SUFFIX, *members]})
        return dn

    def add_member(self, group_dn: str, person_dn: str) -> None:
        self.admin().modify(group_dn, {"member": [(MODIFY_ADD, [person_dn])]})

    def remove_member(self, group_dn: str, person_dn: str) -> None:
        self.admin().modify(group_dn, {"member": [(MODIFY_DELETE, [person_dn])]})

    def disable(self, person_dn: str) -> None:
        """Lock the person the OpenLDAP way (ppolicy: slapd then refuses their binds too)."""
        self.admin().modify(
            person_dn, {"pwdAccountLockedTime": [(MODIFY_REPLACE, [LOCKED_FOR_GOOD])]}
        )

    def enable(self, person_dn: str) -> None:
        self.admin().modify(person_dn, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]})

    def set_user_account_control(self, person_dn: str, value: int) -> None:
        """Active Directory's flags (AD_ACCOUNT_DISABLED disables; slapd does not enforce it)."""
        self.admin().modify(person_dn, {"userAccountControl": [(MODIFY_REPLACE, [str(value)])]})

    def set_password(self, person_dn: str, password: str) -> None:
        self.admin().modify(person_dn, {"userPassword": [(MODIFY_REPLACE, [password])]})

    def binds_for(self, dn: str) -> int:
        """How many BIND requests naming `dn` slapd has logged so far."""
        wanted = re.compile(r'BIND dn="([^"]*)" method=')
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return sum(1 for match in wanted.finditer(text) if match.group(1).lower() == dn.lower())

    def write_settings(self, home: Path, **overrides: object) -> Path:
        """Write `<home>/directory.toml` pointing at this server (plain LDAP to loopback,
        ppolicy locks); keyword arguments replace or add keys (None drops one). Its path."""
        values: dict[str, object] = {
            "url": self.url,
            "tls": "none",
            "user_base": PEOPLE,
            "user_attribute": "uid",
            "group_base": GROUPS,
            "group_member_attribute": "member",
            "service_dn": SERVICE_DN,
            "service_password_file": str(self.service_password_file),
            "disabled": "ppolicy",
            "cache_seconds": 0,
        }
        values.update(overrides)
        lines = [
            f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None
        ]
        home.mkdir(parents=True, exist_ok=True)
        path = home / "directory.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def start_slapd(attempts: int = 3) -> ThrowawaySlapd:
    """A started ThrowawaySlapd; tries fresh ports when another process took one of the
    free ports between our look and slapd's bind (two xdist workers start at once)."""
    for attempt in range(attempts):
        try:
            return ThrowawaySlapd().start()
        except SlapdUnavailableError as error:
            if "Address already in use" not in str(error) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def slapd() -> Iterator[ThrowawaySlapd]:
    """One throw-away slapd per test process (so one per xdist worker); tests add people
    and groups with unique names (`slapd.unique`). Skips when slapd cannot start, except
    under CI=true where that is a failure (`make test` installs it when run as root)."""
    try:
        server = start_slapd()
    except SlapdUnavailableError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        pytest.skip(str(error))
    try:
        yield server
    finally:
        server.stop()
