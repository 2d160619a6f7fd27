"""candor.directory.client against a real slapd (tests/support_slapd.py)."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from candor.directory.client import (
    DirectoryConfigError,
    DirectoryRefused,
    DirectoryUnavailable,
    authenticate,
    dn_key,
    look_up,
)
from candor.directory.settings import DirectorySettings, load_directory_settings
from tests.support_slapd import AD_ACCOUNT_DISABLED, AD_NORMAL_ACCOUNT, ThrowawaySlapd, free_port

MARKER = "Pw-marker-5e1f"  # a password no message or log line may hold


def settings_for(slapd: ThrowawaySlapd, tmp_path: Path, **overrides: object) -> DirectorySettings:
    return load_directory_settings(slapd.write_settings(tmp_path / "workspace", **overrides))


@pytest.fixture
def settings(slapd: ThrowawaySlapd, tmp_path: Path) -> DirectorySettings:
    return settings_for(slapd, tmp_path)


def test_the_right_password_gives_the_person_and_their_groups(
    slapd: ThrowawaySlapd, tmp_path: Path
) -> None:
    settings = settings_for(
        slapd,
        tmp_path,
        user_filter="(objectClass=inetOrgPerson)",
        group_filter="(objectClass=groupOfNames)",
    )
    uid = slapd.unique("ada")
    dn = slapd.add_person(uid, "correct horse", display_name="Ada Analyst")
    analysts = slapd.add_group(slapd.unique("analysts"), (dn,))
    slapd.add_group(slapd.unique("others"))

    person = authenticate(settings, uid.upper(), "correct horse")

    assert person.username == uid  # the directory's spelling, whatever case was typed
    assert person.dn == dn
    assert person.display_name == "Ada Analyst"
    assert person.groups == frozenset({analysts})
    assert not person.disabled
    # A filter the person's entry does not match hides them.
    hidden = settings_for(slapd, tmp_path, user_filter="(objectClass=groupOfNames)")
    with pytest.raises(DirectoryRefused):
        authenticate(hidden, uid, "correct horse")


def test_the_directory_spelling_of_a_name_comes_back(
    slapd: ThrowawaySlapd, settings: DirectorySettings
) -> None:
    uid = slapd.unique("Ann")
    slapd.add_person(uid, "secret")
    # The directory compares names without case and outer spaces: so does the answer.
    assert authenticate(settings, f" {uid.lower()} ", "secret").username == uid
    for blank in ("", "   "):
        with pytest.raises(DirectoryRefused):
            authenticate(settings, blank, "secret")
        assert look_up(settings, blank) is None


def test_wrong_password_and_unknown_name_are_refused(
    slapd: ThrowawaySlapd, settings: DirectorySettings
) -> None:
    uid = slapd.unique("bea")
    slapd.add_person(uid, "right one")

    with pytest.raises(DirectoryRefused) as wrong:
        authenticate(settings, uid, "wrong one")
    assert wrong.value.reason == "wrong_password"
    with pytest.raises(DirectoryRefused) as unknown:
        authenticate(settings, slapd.unique("nobody"), "right one")
    assert unknown.value.reason == "unknown_user"
    # The person at the login form cannot tell the two apart.
    assert str(wrong.value) == str(unknown.value)


def test_an_empty_password_is_refused_before_any_bind(
    slapd: ThrowawaySlapd, settings: DirectorySettings
) -> None:
    uid = slapd.unique("cid")
    dn = slapd.add_person(uid, "secret")
    whoami = shutil.which("ldapwhoami")
    if whoami is not None:
        # The hole: this server (like Active Directory) takes a DN with an empty password
        # as an anonymous bind, and says yes.
        hole = subprocess.run(
            [whoami, "-x", "-H", slapd.url, "-D", dn, "-w", ""],
            capture_output=True,
            text=True,
            check=False,
        )
        assert hole.returncode == 0, hole.stderr
        assert hole.stdout.strip() == "anonymous"
    # The log shows a bind as soon as it happens (else counting proves nothing).
    binds_before = slapd.binds_for(dn)
    authenticate(settings, uid, "secret")
    assert slapd.binds_for(dn) == binds_before + 1
    binds_before += 1

    with pytest.raises(DirectoryRefused) as refused:
        authenticate(settings, uid, "")

    assert refused.value.reason == "empty_password"
    assert slapd.binds_for(dn) == binds_before


def test_a_locked_person_is_refused_and_looked_up_as_disabled(
    slapd: ThrowawaySlapd, settings: DirectorySettings
) -> None:
    uid = slapd.unique("dan")
    dn = slapd.add_person(uid, "secret")
    slapd.disable(dn)

    with pytest.raises(DirectoryRefused) as refused:
        authenticate(settings, uid, "secret")
    assert refused.value.reason == "disabled"
    person = look_up(settings, uid)
    assert person is not None and person.disabled

    slapd.enable(dn)
    assert not authenticate(settings, uid, "secret").disabled


def test_active_directory_names_and_disabled_bit(slapd: ThrowawaySlapd, tmp_path: Path) -> None:
    account = slapd.unique("EVE.AD")
    dn = slapd.add_person(
        slapd.unique("eve"),
        "secret",
        cn="Eve Example",
        sam_account_name=account,
        user_account_control=AD_NORMAL_ACCOUNT,
    )
    settings = settings_for(
        slapd, tmp_path, user_attribute="sAMAccountName", disabled="active_directory"
    )

    person = authenticate(settings, account.lower(), "secret")
    assert (person.username, person.dn, person.display_name) == (account, dn, "Eve Example")

    slapd.set_user_account_control(dn, AD_NORMAL_ACCOUNT | AD_ACCOUNT_DISABLED)
    with pytest.raises(DirectoryRefused) as refused:
        authenticate(settings, account, "secret")
    assert refused.value.reason == "disabled"
    looked_up = look_up(settings, account)
    assert looked_up is not None and looked_up.disabled


def test_a_membership_change_is_seen_at_the_next_look_up(
    slapd: ThrowawaySlapd, settings: DirectorySettings
) -> None:
    uid = slapd.unique("fay")
    dn = slapd.add_person(uid, "secret")
    examiners = slapd.add_group(slapd.unique("examiners"), (dn,))
    supervisors = slapd.add_group(slapd.unique("supervisors"))
    first = look_up(settings, uid)
    assert first is not None and first.groups == frozenset({examiners})

    slapd.remove_member(examiners, dn)
    slapd.add_member(supervisors, dn)

    second = look_up(settings, uid)
    assert second is not None and second.groups == frozenset({supervisors})
    assert look_up(settings, slapd.unique("ghost")) is None


HOSTILE_NAMES = ["*", ")(uid=*", "*)(|(uid=*", "\\", "a\x00b", ",cn=admin", "x,cn=admin"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_a_hostile_name_matches_nobody_else(
    slapd: ThrowawaySlapd, settings: DirectorySettings, name: str
) -> None:
    # Someone is there for a wildcard to find, with the password the attacker tries.
    slapd.add_person(slapd.unique("gil"), "shared password")

    with pytest.raises(DirectoryRefused) as refused:
        authenticate(settings, name, "shared password")
    assert refused.value.reason == "unknown_user"
    assert look_up(settings, name) is None


@pytest.mark.parametrize("special", ["*)(uid=*", "back\\slash", "o'neil,cn=admin", "#hash+plus"])
def test_a_person_whose_name_needs_escaping_logs_in_with_their_groups(
    slapd: ThrowawaySlapd, settings: DirectorySettings, special: str
) -> None:
    uid = slapd.unique(special)
    dn = slapd.add_person(uid, "secret")
    group = slapd.add_group(slapd.unique(f"team ({special})*"), (dn,))
    slapd.add_group(slapd.unique("bystanders"), (slapd.add_person(slapd.unique("hal"), "x"),))

    person = authenticate(settings, uid, "secret")

    assert dn_key(person.dn) == dn_key(dn)
    assert {dn_key(each) for each in person.groups} == {dn_key(group)}


def test_the_service_accounts_wrong_password_makes_the_directory_unavailable(
    slapd: ThrowawaySlapd, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text(MARKER + "\n")
    wrong.chmod(0o600)
    settings = settings_for(slapd, tmp_path, service_password_file=str(wrong))
    uid = slapd.unique("ian")
    slapd.add_person(uid, "secret")

    with pytest.raises(DirectoryUnavailable, match="service account"):
        authenticate(settings, uid, "secret")
    with pytest.raises(DirectoryUnavailable, match="service account"):
        look_up(settings, uid)


def test_a_base_that_is_not_there_is_named(slapd: ThrowawaySlapd, tmp_path: Path) -> None:
    uid = slapd.unique("nia")
    slapd.add_person(uid, "secret")
    for key in ("user_base", "group_base"):
        settings = settings_for(slapd, tmp_path, **{key: "ou=nowhere,dc=candor,dc=test"})
        with pytest.raises(DirectoryUnavailable, match=f"{key} ou=nowhere,dc=candor,dc=test"):
            look_up(settings, uid)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung directory."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for each in accepted:
            each.close()
        listener.close()


def test_a_dead_or_hung_directory_is_unavailable_not_a_hang(
    slapd: ThrowawaySlapd,
    tmp_path: Path,
    silent_listener: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = settings_for(slapd, tmp_path, url=f"ldap://127.0.0.1:{free_port()}")
    hung = settings_for(
        slapd, tmp_path, url=f"ldap://127.0.0.1:{silent_listener}", timeout_seconds=1
    )
    for settings in (dead, hung):
        with pytest.raises(DirectoryUnavailable) as unavailable:
            authenticate(settings, "someone", MARKER)
        assert MARKER not in str(unavailable.value)
    assert slapd.service_password not in caplog.text
    assert MARKER not in caplog.text


def test_no_password_in_a_refusal_or_the_log(
    slapd: ThrowawaySlapd, settings: DirectorySettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    uid = slapd.unique("jo")
    slapd.add_person(uid, "secret")

    with pytest.raises(DirectoryRefused) as refused:
        authenticate(settings, uid, MARKER)

    chain = [refused.value, refused.value.__cause__, refused.value.__context__]
    assert all(MARKER not in repr(error) for error in chain)
    assert MARKER not in caplog.text and slapd.service_password not in caplog.text


def test_ldaps_and_starttls_work_with_the_servers_ca(slapd: ThrowawaySlapd, tmp_path: Path) -> None:
    uid = slapd.unique("kay")
    slapd.add_person(uid, "secret")
    ca = str(slapd.ca_file)
    for overrides in (
        {"url": slapd.ldaps_url, "tls": "ldaps", "ca_file": ca},
        {"url": slapd.ldaps_url.replace("127.0.0.1", "localhost"), "tls": "ldaps", "ca_file": ca},
        {"url": slapd.url, "tls": "starttls", "ca_file": ca},
    ):
        assert (
            authenticate(settings_for(slapd, tmp_path, **overrides), uid, "secret").username == uid
        )


def test_tls_refuses_an_unknown_ca_and_a_certificate_for_another_name(
    slapd: ThrowawaySlapd, tmp_path: Path
) -> None:
    uid = slapd.unique("lou")
    slapd.add_person(uid, "secret")
    ca = str(slapd.ca_file)
    cases: list[tuple[dict[str, object], str]] = [
        # The system's roots do not know our CA.
        ({"url": slapd.ldaps_url, "tls": "ldaps"}, "certificate verify failed"),
        ({"url": slapd.url, "tls": "starttls"}, "certificate verify failed"),
        # Our CA, but the certificate names 127.0.0.1 and localhost, not 127.0.0.2.
        ({"url": slapd.misnamed_ldaps_url, "tls": "ldaps", "ca_file": ca}, "match any name"),
    ]
    for overrides, why in cases:
        with pytest.raises(DirectoryUnavailable, match=why):
            authenticate(settings_for(slapd, tmp_path, **overrides), uid, "secret")


def test_a_ca_file_that_is_no_certificate_or_gone_is_a_clear_refusal(
    slapd: ThrowawaySlapd, tmp_path: Path
) -> None:
    uid = slapd.unique("ola")
    slapd.add_person(uid, "secret")
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    settings = settings_for(slapd, tmp_path, url=slapd.ldaps_url, tls="ldaps", ca_file=str(ca))

    with pytest.raises(DirectoryUnavailable, match="no certificate"):
        look_up(settings, uid)
    ca.unlink()
    with pytest.raises(DirectoryConfigError, match="ca_file"):
        look_up(settings, uid)


def test_plain_ldap_to_another_host_is_refused_even_in_settings_made_by_hand(
    slapd: ThrowawaySlapd, settings: DirectorySettings
) -> None:
    uid = slapd.unique("max")
    dn = slapd.add_person(uid, "secret")
    binds_before = slapd.binds_for(dn)
    remote = replace(settings, host="ldap.example.org")

    for call in (lambda: authenticate(remote, uid, "secret"), lambda: look_up(remote, uid)):
        with pytest.raises(DirectoryConfigError, match="loopback"):
            call()
    assert slapd.binds_for(dn) == binds_before
