"""The stand-in Hub's repos: local folders served as model / dataset repos, with the ids and
hashes the Hub gives their files."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
COMMIT_DATE = "2024-01-01T00:00:00.000Z"


def sha40(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    root: str
    revisions: dict[str, str]  # name (branch, tag, or the sha itself) -> 40-hex commit sha
    content_hashes: bool = True  # False: ids from (path, size, mtime), no reading of big files
    _hashes: dict[tuple[str, int, float], tuple[str, str]] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        return self.revisions["main"]

    def files(self) -> list[str]:
        """Every file's repo path, sorted (posix separators); dotfiles in folders kept."""
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in filenames:
                full = os.path.join(dirpath, name)
                out.append(os.path.relpath(full, self.root).replace(os.sep, "/"))
        return sorted(out)

    def local(self, path: str) -> str | None:
        """The local path of repo path `path`, or None if it escapes the root."""
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            return None
        return os.path.join(self.root, *parts)

    def hashes(self, path: str) -> tuple[str, str]:
        """(git blob sha1, sha256) of a file, cached by (path, size, mtime)."""
        full = self.local(path)
        st = os.stat(full)
        key = (path, st.st_size, st.st_mtime)
        if key not in self._hashes and not self.content_hashes:
            # Clients use these as opaque ids (ETag = cache blob name); nothing re-hashes content.
            stamp = f"{path}:{st.st_size}:{st.st_mtime_ns}"
            self._hashes[key] = (sha40(stamp), hashlib.sha256(stamp.encode()).hexdigest())
        if key not in self._hashes:
            git = hashlib.sha1(f"blob {st.st_size}\0".encode())
            sha256 = hashlib.sha256()
            with open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    git.update(chunk)
                    sha256.update(chunk)
            self._hashes[key] = (git.hexdigest(), sha256.hexdigest())
        return self._hashes[key]

    def entry(self, path: str, expand: bool) -> dict[str, Any]:
        """One tree / paths-info entry, as the Hub writes it."""
        full = self.local(path)
        if os.path.isdir(full):
            out: dict[str, Any] = {
                "type": "directory",
                "oid": sha40("tree:" + path),
                "size": 0,
                "path": path,
            }
        else:
            git_oid, sha256 = self.hashes(path)
            size = os.path.getsize(full)
            out = {"type": "file", "oid": git_oid, "size": size, "path": path}
            # Files the Hub stores with LFS carry this; optional for clients. No "xetHash":
            # with one, huggingface_hub would try to download through Xet.
            out["lfs"] = {"oid": sha256, "size": size, "pointerSize": 134}
        if expand:
            out["lastCommit"] = {"id": self.sha, "title": "initial commit", "date": COMMIT_DATE}
        return out
