"""Output files: checked before any work, written beside the target and published atomically,
never over a file that appeared meanwhile (unless asked), with the permissions of the umask, and
no temporary file left behind by a run that was killed."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

# File systems of the kernel and its devices: nothing of ours is written there (as root, a
# rename over /dev/null replaces the device itself).
SYSTEM_FOLDERS = ("/dev", "/proc", "/sys")
_TEMPORARY_EXTRA = 32  # what temporary_beside adds to the name: ".{name}.{pid}.{hex}.tmp"


def check_output(out: Path, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse at once what would fail or destroy at the end of a run: a folder, a file that
    exists (without overwrite), what is not a regular file (a device, a FIFO, a socket: even
    with overwrite), one of the run's own inputs, a kernel file system, a name too long."""
    limit = _name_max(out.parent)
    if len(os.fsencode(out.name)) + _TEMPORARY_EXTRA > limit:
        raise ValueError(
            f"the --out name is {len(out.name)} characters long: at most "
            f"{limit - _TEMPORARY_EXTRA} here"
        )
    if out.is_dir():
        raise ValueError(f"{out} is a folder; --out takes the path of a .parquet file")
    resolved = os.path.realpath(out)
    system = [f for f in SYSTEM_FOLDERS if resolved == f or resolved.startswith(f + "/")]
    if system and not resolved.startswith("/dev/shm/"):
        raise ValueError(
            f"{out} is under {system[0]}, the kernel's files and devices: choose an --out in a "
            "folder of your own"
        )
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise ValueError(f"{out} cannot be checked: {error.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise ValueError(
            f"{out} is not a regular file (a device, FIFO or socket): it is never replaced; "
            "--out takes the path of a .parquet file"
        )
    for given in inputs:
        if mode is not None and os.path.exists(given) and os.path.samefile(out, given):
            raise ValueError(f"{out} is the same file as the input {given}: choose another --out")
    if mode is not None and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into {folder}: choose an --out in a folder you can write")


def _name_max(folder: Path) -> int:
    """The longest file name the folder's file system takes (255 where it does not say)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def temporary_beside(out: Path) -> Path:
    """A new temporary name in the target's folder, naming this process (see remove_stale)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    return out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def remove_stale(out: Path) -> list[Path]:
    """Temporaries of `out` left by processes that no longer run (killed while writing)."""
    removed = []
    for tmp in out.parent.glob(f".{out.name}.*.tmp"):
        parts = tmp.name[len(out.name) + 2 :].split(".")
        if len(parts) == 3 and parts[0].isdigit() and not _alive(int(parts[0])):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's, and running
        return True
    return True


def publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished temporary into place: with the umask's permissions (temporaries are
    private), atomically, and without --overwrite never over a file that exists by now."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    if overwrite:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # fails if `out` appeared during the run
    except FileExistsError:
        raise FileExistsError(
            f"{out} was created while this run worked; its result is kept in {tmp} "
            "(rename it, or rerun with --overwrite)"
        ) from None
    except OSError:  # a file system without hard links: the check and the move, as close
        if out.exists():
            raise FileExistsError(f"{out} exists; the result is kept in {tmp}") from None
        os.replace(tmp, out)
        return
    tmp.unlink()
