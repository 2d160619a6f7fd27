#!/usr/bin/env bash
# Debian packages that `make test` starts for real: Chromium for the browser tests.
# Run by `make test`; installs only what is missing, only as root (otherwise it says what
# to install, and the browser tests skip outside CI and fail under CI=true).
set -euo pipefail
if ! "$(dirname "$0")/install-debian-packages.sh" "the browser tests" chromium; then
    if [ "${CI:-}" = "true" ]; then
        exit 1
    fi
    echo "install-test-deps: going on without them; the tests that need them will skip" >&2
fi
