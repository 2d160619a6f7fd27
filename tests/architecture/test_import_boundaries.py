"""The parts import only what DESIGN.md lets them: checked on the source, not trusted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "candor"

# part -> the candor parts it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "images": set(),
    # AES-GCM sealing and key wrapping: a leaf, like images.
    "sealing": set(),
    "faces": {"images"},
    "index": {"faces", "sealing"},
    "store": {"sealing"},
    "policy": set(),
    "audit": set(),
    "evaluation": {"images", "faces", "index", "sealing"},
    # Reads agency exports (CSV manifests, ANSI/NIST) into photos; knows nothing of the store.
    "imports": {"images"},
    # The LDAP / Active Directory client: a leaf, like images; the workflow uses it.
    "directory": set(),
    "workflow": {
        "images",
        "faces",
        "index",
        "store",
        "policy",
        "audit",
        "evaluation",
        "sealing",
        "imports",
        "directory",
    },
    "reports": {"store", "audit"},
    # A client of the workflow like the CLI: it writes only through workflow functions.
    "simulation": {"workflow"},
    "cli": {"workflow", "reports", "simulation", "imports"},
    "server": {"workflow", "reports"},
}


def candor_imports(path: Path) -> set[str]:
    """The candor parts a module imports (first component after `candor.`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parts: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "candor" and len(pieces) > 1:
                parts.add(pieces[1])
    return parts


def modules() -> list[Path]:
    return sorted(path for path in SOURCE.rglob("*.py") if path.parent != SOURCE)


@pytest.mark.parametrize("module", modules(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_module_imports_only_allowed_parts(module: Path) -> None:
    part = module.relative_to(SOURCE).parts[0]
    assert part in ALLOWED, f"{part} is not a part named in DESIGN.md"
    forbidden = candor_imports(module) - ALLOWED[part] - {part}
    assert not forbidden, f"{module.relative_to(SOURCE)} imports {sorted(forbidden)}"


def test_only_workflow_and_evaluation_use_faces_or_index() -> None:
    users = {
        module.relative_to(SOURCE).parts[0]
        for module in modules()
        if candor_imports(module) & {"faces", "index"}
    }
    assert users <= {"workflow", "evaluation", "faces", "index"}


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    planted = tmp_path / "bad.py"
    planted.write_text("from candor.faces import FaceEngine\nimport candor.index.exact\n")
    assert candor_imports(planted) == {"faces", "index"}
