#!/usr/bin/env bash
# Debian packages that `make test` starts for real: Chromium for the browser tests, and
# PostgreSQL's server for the suites that run on PostgreSQL too (tests/postgres.py starts
# a throw-away cluster of its own; the packaged cluster service is not used).
# Run by `make test`; installs only what is missing, only as root (otherwise it says what
# to install, and the browser tests skip outside CI and fail under CI=true).
set -euo pipefail
if ! "$(dirname "$0")/install-debian-packages.sh" "the browser and PostgreSQL tests" chromium postgresql; then
    if [ "${CI:-}" = "true" ]; then
        exit 1
    fi
    echo "install-test-deps: going on without them; the tests that need them will skip" >&2
fi

# OpenLDAP's server and tools for the directory tests (tests/support_slapd.py starts a
# slapd of its own on a loopback port with a throw-away database). The packaged daemon
# must never run: debconf is told to skip its configuration (no default database is
# made), a policy-rc.d keeps the package scripts from starting it, and it is stopped and
# disabled afterwards in case something started it anyway.
package_missing() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" != "install ok installed" ]
}
temporary_policy=""
installing_slapd=false
if package_missing slapd && [ "$(id -u)" -eq 0 ]; then
    installing_slapd=true
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        temporary_policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# install-test-deps: no service starts while packages install\nexit 101\n' \
            >"$temporary_policy"
        chmod 755 "$temporary_policy"
        trap 'rm -f "$temporary_policy"' EXIT
    fi
fi
if "$(dirname "$0")/install-debian-packages.sh" "the directory (LDAP) tests" slapd ldap-utils; then
    # Only a daemon this run installed: a slapd the machine already had is left alone.
    if [ "$installing_slapd" = true ]; then
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            systemctl stop slapd >/dev/null 2>&1 || true
            systemctl disable slapd >/dev/null 2>&1 || true
        else
            service slapd stop >/dev/null 2>&1 || true
            update-rc.d slapd disable >/dev/null 2>&1 || true
        fi
    fi
else
    if [ "${CI:-}" = "true" ]; then
        exit 1
    fi
    echo "install-test-deps: going on without slapd; the directory tests will skip" >&2
fi
