"""What a running collation has done, beside its output, for whoever waits on it (the server's
page, another terminal): `<out>.progress.json` (its state, documents, tokens, rate, time left),
rewritten atomically as it goes; and, with `--partial`, `<out>.partial.parquet`: the records
over the documents done so far, written at every checkpoint, so that a server shows records long
before the whole corpus has run. Both go when the output is written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from activations.io.dataset_files import PARTIAL_SUFFIX

WRITE_EVERY_S = 0.5


def progress_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".progress.json")


def partial_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)  # where the server's reader looks


class ProgressFile:
    def __init__(self, out: str | os.PathLike, model: str, corpus: str) -> None:
        self.path = progress_path(out)
        self.fields: dict[str, Any] = {
            "pid": os.getpid(), "model": model, "corpus": corpus, "started": time.time(),
        }  # fmt: skip
        self._written = 0.0

    def update(self, state: str, force: bool = True, **fields: Any) -> None:
        self.fields.update(fields, state=state, updated=time.time())
        now = time.monotonic()
        if not force and now - self._written < WRITE_EVERY_S:
            return
        self._written = now
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.fields))
            os.replace(tmp, self.path)
        except OSError:  # a read-only folder: the run goes on without telling
            pass

    def batch(self, done: int, total: int, tokens: int, seconds: float) -> None:
        rate = tokens / seconds if seconds > 0 else None
        left = (seconds / max(done - self.fields.get("resumed_at", 0), 1)) * (total - done)
        first = self.fields.get("state") != "collating"
        self.update(
            "collating", force=first, documents_done=done, documents_total=total,
            tokens=tokens, tokens_per_s=rate, seconds_left=left,
        )  # fmt: skip

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def read_progress(out: str | os.PathLike) -> dict[str, Any] | None:
    """A collation's progress; its state says "stopped" where its process is gone before the
    end (a restart resumes it). None where there is none; ValueError naming the file where
    it is not one of ours (not JSON, not an object)."""
    path = progress_path(out)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read: {error}") from None
    try:
        fields = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{path} is not a progress file (a JSON object)")
    if fields.get("state") not in ("failed",) and not _alive(fields.get("pid")):
        fields["state"] = "stopped"
    fields["partial"] = partial_path(out).exists()
    return fields


def _alive(pid: object) -> bool:
    """Whether the process still runs. 0 and negative numbers name process groups to the
    kernel, not a process: never a collation's."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
