#!/usr/bin/env bash
# Install the named Debian packages that are missing: the one way `make` gets system
# packages (build dependencies, and the browser and servers the tests start).
#
# usage: install-debian-packages.sh WHAT PACKAGE...
#   WHAT says in a few words what the packages are for; it appears in every message.
# Installs only what is missing, only as root; otherwise prints the apt-get line to run
# and exits 1.
set -euo pipefail
what=$1
shift

missing=()
for package in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-debian-packages: $what need ${missing[*]}, and this is not a Debian system; install their equivalents, then run make again" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-debian-packages: $what need the Debian packages ${missing[*]}" >&2
    echo "run: sudo apt-get install -y ${missing[*]}   then run make again" >&2
    exit 1
fi
echo "install-debian-packages: installing ${missing[*]} ($what)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
