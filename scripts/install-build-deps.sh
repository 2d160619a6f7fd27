#!/usr/bin/env bash
# Debian packages that Candor's Python dependencies build against.
#
# dlib is built from its source distribution so that its face network runs on OpenBLAS
# (about 5 times less CPU per face than the PyPI binary wheel, with the same templates:
# docs/performance.md). Its build needs CMake, a C++ compiler and the BLAS and LAPACK
# headers, and the headers of the Python it builds for (the first argument, default
# python3.11). Run by `make` before pip; installs only what is missing, only as root.
set -euo pipefail
python=${1:-python3.11}

packages=(cmake g++ make libopenblas-dev liblapack-dev)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
include=$("$python" -c 'import sysconfig; print(sysconfig.get_path("include"))')
if [ ! -f "$include/Python.h" ]; then
    version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    missing+=("python$version-dev")
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-build-deps: need ${missing[*]} (CMake, a C++ compiler, OpenBLAS and LAPACK headers), and this is not a Debian system; install their equivalents, then run make again" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-build-deps: missing Debian packages: ${missing[*]}" >&2
    echo "run: sudo apt-get install -y ${missing[*]}   then run make again" >&2
    exit 1
fi
echo "install-build-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
