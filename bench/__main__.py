"""`python -m bench [FIGURE ...]`: run figures, print the table, update bench/results.json.

One figure runs in this process; several run each in a child process of its own, so that one
figure's memory, threads and compiled code do not colour the next one's numbers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import FigureResult, log, quiet_libraries

FIGURES = {
    "collation": "bench.collation",
    "model_start": "bench.model_start",
    "lookup": "bench.lookup",
    "remote": "bench.remote",
    "live": "bench.live",
    "published": "bench.published",
    "published_text": "bench.published_text",
    "first_run": "bench.first_run",
    "search": "bench.search",
    "weights": "bench.weights",
    "push": "bench.push",
    "weight_view": "bench.weight_view",
    "debugger": "bench.debugger",
    "explain": "bench.explain",
}
RESULTS = Path(__file__).with_name("results.json")


def run_here(name: str) -> dict[str, Any]:
    """One figure; one that fails is reported as failed, with why, and the others go on."""
    quiet_libraries()
    began = time.perf_counter()
    try:
        result: FigureResult = importlib.import_module(FIGURES[name]).run()
    except Exception as error:
        log(f"figure {name} failed: {type(error).__name__}: {error}")
        return {"rows": [], "details": {}, "error": f"{type(error).__name__}: {error}"}
    result.seconds = time.perf_counter() - began
    return result.to_json()


def run_child(name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        part = Path(tmp) / "part.json"
        command = [sys.executable, "-m", "bench", name, "--part", str(part)]
        done = subprocess.run(command, check=False)
        return read_part(part, done.returncode)


def read_part(part: Path, returncode: int) -> dict[str, Any]:
    """A child's figure: what it wrote, kept where the process failed after writing it (an
    abort as it exits loses no rows), with the failure said beside them."""
    if not part.exists():
        return {"rows": [], "details": {}, "error": f"exit status {returncode}"}
    figure = json.loads(part.read_text())
    if returncode != 0:
        said = [figure.get("error"), f"exit status {returncode} after its figure was written"]
        figure["error"] = "; ".join(filter(None, said))
    return figure


def _format_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


def table(results: dict[str, dict[str, Any]]) -> str:
    header = ("figure", "subject", "baseline", "ratio", "target", "met?")
    lines = [header]
    for name, figure in results.items():
        if figure.get("error"):
            lines.append((name, f"FAILED: {figure['error']}", "", "", "", "NO"))
        for row in figure["rows"]:
            target = row["target"]
            met = {None: "—", True: "yes", False: "NO"}[row["met"]]
            lines.append(
                (
                    name,
                    row["subject"],
                    row["baseline"],
                    _format_ratio(row["ratio"]),
                    "—" if target is None else f"≥ {target:.2f}×",
                    met,
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if i == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("figures", nargs="*", metavar="FIGURE", help=", ".join(FIGURES))
    parser.add_argument("--part", help=argparse.SUPPRESS)  # a child writes its figure here
    args = parser.parse_args(argv)
    names = args.figures or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    if args.part:
        Path(args.part).write_text(json.dumps(run_here(names[0])))
        return 0

    began, load_before = time.perf_counter(), os.getloadavg()
    if len(names) == 1:
        results = {names[0]: run_here(names[0])}
    else:
        results = {}
        for name in names:
            log(f"figure {name}")
            results[name] = run_child(name)
    wall = time.perf_counter() - began
    load = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    print()
    print(table(results))
    print(f"\nwall time: {wall:.0f} s ({', '.join(names)}); load average (1, 5, 15 min) ", end="")
    print(f"before {load[:3]}, after {load[3:]}")
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    saved.setdefault("figures", {}).update(results)
    saved["last_run"] = {
        "figures": names,
        "wall_s": round(wall, 1),
        "load_average_before_after": load,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    failed = [n for n, r in results.items() if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
