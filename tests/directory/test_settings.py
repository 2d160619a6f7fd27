"""directory.toml: what loads, and a one-line error naming the file and the key for the rest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from candor.directory.settings import (
    DirectoryConfigError,
    is_loopback,
    load_directory_settings,
    read_service_password,
)

OPENLDAP = """\
url = "ldaps://ldap.example.org"
ca_file = "{ca}"
user_base = "ou=people,dc=example,dc=org"
group_base = "ou=groups,dc=example,dc=org"
service_dn = "cn=candor,ou=services,dc=example,dc=org"
service_password_file = "{password}"
disabled = "ppolicy"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return workspace


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "candor-directory-password"
    path.parent.mkdir()
    path.write_text("s3rvice\n")
    path.chmod(0o640)
    return path


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("(a CA certificate)\n")
    return path


def write(home: Path, text: str) -> Path:
    path = home / "directory.toml"
    path.write_text(text)
    return path


def openldap(password: Path, ca: Path) -> str:
    return OPENLDAP.format(password=password, ca=ca)


def test_openldap_settings_load_with_their_defaults(
    home: Path, password_file: Path, ca: Path
) -> None:
    settings = load_directory_settings(write(home, openldap(password_file, ca)))

    assert (settings.host, settings.port, settings.tls) == ("ldap.example.org", 636, "ldaps")
    assert settings.user_attribute == "uid" and settings.group_member_attribute == "member"
    assert settings.cache_seconds == 60 and settings.timeout_seconds == 5
    assert settings.workspace == home
    assert read_service_password(settings) == "s3rvice"


def test_active_directory_settings_load(home: Path, password_file: Path) -> None:
    settings = load_directory_settings(
        write(
            home,
            f"""\
url = "ldap://dc1.agency.example:389"
tls = "starttls"
user_base = "OU=Staff,DC=agency,DC=example"
user_attribute = "sAMAccountName"
user_filter = "(&(objectCategory=person)(objectClass=user))"
group_base = "OU=Groups,DC=agency,DC=example"
group_member_attribute = "member:1.2.840.113556.1.4.1941:"
service_dn = "CN=svc-candor,OU=Service Accounts,DC=agency,DC=example"
service_password_file = "{password_file}"
disabled = "active_directory"
cache_seconds = 30
timeout_seconds = 3
""",
        )
    )
    assert (settings.port, settings.tls, settings.disabled) == (389, "starttls", "active_directory")
    assert settings.group_member_attribute == "member:1.2.840.113556.1.4.1941:"


MISTAKES = [
    ("url", 'url = "ldap.example.org"'),
    ("url", 'url = "ldaps://ldap.example.org/dc=example?x"'),
    ("url", 'url = "ldaps://ldap.example.org:99999"'),
    ("tls", 'url = "ldap://ldap.example.org"\ntls = "none"'),
    ("tls", 'url = "ldap://10.0.0.5"\ntls = "none"'),
    ("tls", 'url = "ldap://127.0.0.1.example.org"\ntls = "none"'),
    ("tls", 'url = "ldaps://ldap.example.org"\ntls = "starttls"'),
    ("tls", 'url = "ldap://ldap.example.org"\ntls = "ssl"'),
    ("ca_file", 'ca_file = "/no/such/ca.pem"'),
    ("user_base", 'user_base = "people"'),
    ("group_base", 'group_base = ""'),
    ("service_dn", "service_dn = 7"),
    ("user_attribute", 'user_attribute = "uid)(cn=*"'),
    ("group_member_attribute", 'group_member_attribute = "member=x"'),
    ("user_filter", 'user_filter = "objectClass=person"'),
    ("group_filter", 'group_filter = "(&(a=b)"'),
    ("disabled", 'disabled = "yes"'),
    ("cache_seconds", "cache_seconds = -1"),
    ("cache_seconds", "cache_seconds = 1.5"),
    ("timeout_seconds", "timeout_seconds = 0"),
    ("timeout_seconds", 'timeout_seconds = "5"'),
    ("servce_dn", 'servce_dn = "cn=typo"'),
]


@pytest.mark.parametrize(("key", "line"), MISTAKES, ids=[line for _key, line in MISTAKES])
def test_a_mistake_names_the_file_and_the_key(
    home: Path, password_file: Path, ca: Path, key: str, line: str
) -> None:
    base = openldap(password_file, ca)
    for name in re.findall(r"^(\w+) =", line, flags=re.MULTILINE):
        base = "\n".join(row for row in base.splitlines() if not row.startswith(f"{name} ="))
    path = write(home, base + "\n" + line + "\n")

    with pytest.raises(DirectoryConfigError) as error:
        load_directory_settings(path)

    message = str(error.value)
    assert message.startswith(f"{path}: {key}: ")
    assert "\n" not in message


@pytest.mark.parametrize("key", ["url", "user_base", "group_base", "service_dn", "disabled"])
def test_a_missing_key_is_named(home: Path, password_file: Path, ca: Path, key: str) -> None:
    text = "\n".join(
        row for row in openldap(password_file, ca).splitlines() if not row.startswith(f"{key} =")
    )
    with pytest.raises(DirectoryConfigError, match=rf": {key}: missing"):
        load_directory_settings(write(home, text))


def test_no_file_and_bad_toml_are_named(home: Path) -> None:
    with pytest.raises(DirectoryConfigError, match="no such file"):
        load_directory_settings(home / "directory.toml")
    with pytest.raises(DirectoryConfigError, match="not valid TOML"):
        load_directory_settings(write(home, 'url = "ldaps://x\n'))


def test_plain_ldap_is_allowed_to_loopback_only() -> None:
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.8.9.1", "::1", "LOCALHOST"))
    assert not any(is_loopback(host) for host in ("10.0.0.1", "localhost.example", "::2", ""))


def test_the_password_file_stays_outside_the_workspace_and_private(
    home: Path, password_file: Path, ca: Path, tmp_path: Path
) -> None:
    inside = home / "secrets" / "password"
    inside.parent.mkdir()
    inside.write_text("s3rvice\n")
    inside.chmod(0o600)
    link = tmp_path / "link-to-inside"
    link.symlink_to(inside)
    readable = tmp_path / "world-readable"
    readable.write_text("s3rvice\n")
    readable.chmod(0o644)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    cases = {
        "relative/password": "absolute path",
        str(inside): "inside the workspace",
        str(link): "inside the workspace",
        str(readable): "chmod 600",
        str(tmp_path / "missing"): "does not exist",
        str(tmp_path): "not a regular file",
        str(empty): "one line",
    }
    for path, why in cases.items():
        text = openldap(password_file, ca).replace(str(password_file), path)
        with pytest.raises(DirectoryConfigError) as error:
            load_directory_settings(write(home, text))
        assert str(error.value).startswith(f"{home / 'directory.toml'}: service_password_file: ")
        assert why in str(error.value)
        assert "s3rvice" not in str(error.value)


def test_the_password_is_read_again_at_each_use(home: Path, password_file: Path, ca: Path) -> None:
    settings = load_directory_settings(write(home, openldap(password_file, ca)))
    password_file.write_text("rotated\n")
    assert read_service_password(settings) == "rotated"
    password_file.chmod(0o604)
    with pytest.raises(DirectoryConfigError, match="chmod 600"):
        read_service_password(settings)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "directory.md"


def test_the_examples_in_the_docs_load(home: Path, password_file: Path, ca: Path) -> None:
    text = DOCS.read_text()
    # The examples of the settings file's own section (other sections may show other TOML).
    section = text.split("\n## The settings file\n", 1)[1].split("\n## ", 1)[0]
    examples = re.findall(r"```toml\n(.*?)```", section, flags=re.DOTALL)
    assert len(examples) == 2
    for example in examples:
        example = re.sub(r'(ca_file = )"[^"]*"', f'\\1"{ca}"', example)
        example = re.sub(r'(service_password_file = )"[^"]*"', f'\\1"{password_file}"', example)
        load_directory_settings(write(home, example))
    # The example of a mistake is the message Candor gives.
    path = write(
        home, openldap(password_file, ca).replace("ldaps://", "ldap://") + 'tls = "none"\n'
    )
    with pytest.raises(DirectoryConfigError) as error:
        load_directory_settings(path)
    assert str(error.value).removeprefix(str(path)) in text
