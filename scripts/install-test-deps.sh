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
