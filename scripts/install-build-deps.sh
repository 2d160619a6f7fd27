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
include=$("$python" -c 'import sysconfig; print(sysconfig.get_path("include"))')
if [ ! -f "$include/Python.h" ]; then
    version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    packages+=("python$version-dev")
fi
exec "$(dirname "$0")/install-debian-packages.sh" \
    "building dlib (CMake, a C++ compiler, OpenBLAS and LAPACK headers)" "${packages[@]}"
