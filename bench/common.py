"""What every figure shares: result rows, progress lines, statistics and peak memory."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

EMBEDDED_MODEL = "smollm2-135m"
STARTED_ENV = "BENCH_STARTED"  # children stamp their progress lines from the parent's start
_STARTED = float(os.environ.setdefault(STARTED_ENV, str(time.time())))


@dataclass
class Row:
    """One line of the table: a subject against its baseline; ratio > 1 means the subject is
    faster (or, for memory, larger). `target` is the least acceptable ratio, if there is one."""

    figure: str
    subject: str
    baseline: str
    ratio: float | None
    target: float | None = None

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"met": self.met}


@dataclass
class FigureResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [r.to_json() for r in self.rows],
            "details": self.details,
            "seconds": round(self.seconds, 1),
        }


def log(message: str) -> None:
    """A progress line on stderr, stamped with seconds since the run began."""
    print(f"[{time.time() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ≥ 4.0); False where it cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory since the last reset (VmHWM), else since the process started."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet_libraries() -> None:
    """Progress bars and warnings of the libraries would bury the progress lines."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set for a block, then restored (unset where they were unset)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
