"""The code's shape: imports point one way (activation_server → activations → registry), the
server through the public surface of activations alone (SERVER_IMPORT), and within activations
from room to room (ROOMS, bottom up: no room imports one above it or beside it, so no two rooms
import each other); no file grows past what one reading holds."""

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
# the rooms of activations/ (its subpackages and top-level modules), bottom up: a room imports
# only rooms of the tiers below its own
ROOMS: list[tuple[str, ...]] = [
    ("pools", "corpus", "commands"),  # worker pools, corpora, the command-line plumbing
    ("io",),  # bytes: local, HTTP, cloud and Hub files, ranged Parquet reads, caches, errors
    ("models",),  # the networks: adapters, capture, loading, live runs
    ("weights",),  # what a neuron reads and writes, from the weights
    ("records",),  # record formats (GLU Parquet, neuron-explainer JSON) and record answers
    ("text",),  # example text: documents and windows around each example's max
    ("sources",),  # a record source per dataset format, and the catalog of them
    ("search",),  # prompt and token search
    ("collate",),  # collation: engines, accumulators, writer
    ("publish",),  # a collated file to the Hub in the published layout, with its card
    ("debugger",),  # TDB's derived scalars, ablations and traces: one forward + backward pass
    ("explanations",),  # neuron-explainer's explain, simulate and score; explanation datasets
    # the composition root (what the server and the Python API share), and every error the
    # package raises to its callers
    ("session", "errors"),
    # the Python API: everything above, no server; and the package's commands as the `neurons`
    # command line runs them (collate, merge, explain, score, push), each imported when it runs
    ("api", "cli_commands"),
]
TIER = {room: tier for tier, rooms in enumerate(ROOMS) for room in rooms}
# what the server (every module of activation_server/, its routes, debugger, app, services and
# command line alike) may import of activations: its public surface (the API with the answers
# it returns, the composition root with the parts the server builds, runs and closes, the error
# types, the commands the command line runs), never a room behind it
SERVER_IMPORT = {
    "activations.api", "activations.session", "activations.errors", "activations.cli_commands",
}  # fmt: skip


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


def room_of(module: str) -> str | None:
    """The room of a module of activations (its subpackage or top-level module)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "activations" and len(parts) > 1 else None


def room_imports() -> dict[tuple[str, str], list[str]]:
    """(room, imported room) -> where, for every import from one room of activations into
    another, function-local ones included."""
    found: dict[tuple[str, str], list[str]] = {}
    base = ROOT / "activations"
    for path in sorted(base.rglob("*.py")):
        relative = path.relative_to(base)
        room = relative.parts[0].removesuffix(".py")
        if room == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from activations import api` names the room in the imported name
                modules = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                other = room_of(module)
                if other is not None and other != room:
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault((room, other), []).append(where)
    return found


def wrong_room_imports(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """Imports of a room not below the importer (or of a room not in ROOMS)."""
    wrong = []
    for (room, other), where in sorted(edges.items()):
        if room not in TIER or other not in TIER:
            unknown = room if room not in TIER else other
            wrong.append(f"{unknown}: a room not in ROOMS (place it in the picture)")
        elif TIER[other] >= TIER[room]:
            wrong.append(f"{room} imports {other} (not below it): {', '.join(where)}")
    return wrong


def cycles(edges) -> list[list[str]]:
    """Every cycle of rooms (as a path that comes back to its start), by depth-first search."""
    graph: dict[str, set[str]] = {}
    for room, other in edges:
        graph.setdefault(room, set()).add(other)
    found, state = [], {}

    def visit(room: str, path: list[str]) -> None:
        state[room] = "open"
        for other in sorted(graph.get(room, ())):
            if state.get(other) == "open":
                found.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other, [*path, other])
        state[room] = "done"

    for room in sorted(graph):
        if room not in state:
            visit(room, [room])
    return found


def activations_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of activations in a file, function-local ones included;
    `from activations import api` names activations.api."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "activations":
                modules = [f"activations.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m.split(".")[0] == "activations"]
    return sorted(found)


def server_reaching_into_rooms(paths: list[Path]) -> list[str]:
    """Where a file imports a module of activations that is not in SERVER_IMPORT."""
    return [
        f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{line} "
        f"imports {module}"
        for path in paths
        for line, module in activations_imports(path)
        if module not in SERVER_IMPORT
    ]


def test_the_server_imports_only_the_public_surface_of_activations():
    server = sorted((ROOT / "activation_server").rglob("*.py"))
    reading = {p.relative_to(ROOT).parts[1] for p in server if activations_imports(p)}
    # the check reads the routes' imports and those of the modules beside them
    assert {"routes", "debugger", "app.py", "cli.py"} <= reading, reading
    assert server_reaching_into_rooms(server) == []


def test_the_server_check_sees_a_room_reached_into(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from activations.api import GluNeuronRecord\n"
        "from activations import errors, records\n"
        "def f():\n    import activations.sources.source\n"
    )
    assert activations_imports(sample) == [
        (1, "activations.api"), (2, "activations.errors"), (2, "activations.records"),
        (4, "activations.sources.source"),
    ]  # fmt: skip
    assert server_reaching_into_rooms([sample]) == [
        "sample.py:2 imports activations.records",
        "sample.py:4 imports activations.sources.source",
    ]


def test_rooms_of_activations_import_only_rooms_below():
    edges = room_imports()
    assert edges, "the check reads no import between rooms"
    assert wrong_room_imports(edges) == []
    assert cycles(edges) == []


def test_the_room_check_sees_upward_imports_and_cycles(tmp_path):
    edges = {("models", "io"): ["a"], ("io", "models"): ["b"], ("text", "search"): ["c"]}
    wrong = wrong_room_imports(edges)
    assert wrong == ["io imports models (not below it): b", "text imports search (not below it): c"]
    assert cycles(edges) == [["io", "models", "io"]]
    assert wrong_room_imports({("mystery", "io"): ["d"]}) == [
        "mystery: a room not in ROOMS (place it in the picture)"
    ]
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from activations import api\n")
    assert (2, "activations") in imported_packages(sample)
    assert room_of("activations.api") == "api" and room_of("activations") is None


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
