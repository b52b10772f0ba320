"""The code's shape: imports point one way (activation_server → activations → registry), and no
file grows past what one reading holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# each package, with the packages it may import (its own and those below it)
LAYERS = {
    "registry": {"registry"},
    "activations": {"activations", "registry"},
    "activation_server": {"activation_server", "activations", "registry"},
}
MAX_LINES = 400


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every import in a file, function-local ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_point_one_way(package):
    upward = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in sorted(imported_packages(path)):
            if name in LAYERS and name not in LAYERS[package]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert upward == [], "imports from a lower package into a higher one"


def test_the_import_check_sees_upward_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from activation_server.app import create_app\n")
    assert (4, "activation_server") in imported_packages(sample)


def test_no_file_is_over_400_lines():
    """The packages' files and the tests' alike."""
    suffixes = {".py", ".js", ".css", ".html", ".c", ".h"}
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for package in (*LAYERS, "tests")
        for path in sorted((ROOT / package).rglob("*"))
        if path.suffix in suffixes and (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert long == []
