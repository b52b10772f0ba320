"""The stand-in Hub's API routes: /api/{type}s/{owner}/{name}[/...] (repo info, tree, paths
info, refs), as huggingface_hub reads them."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.hub.repos import COMMIT_DATE, Repo


class ApiRoutes:
    """A mixin of handler.Handler (its _repo, _revision, _json, _error)."""

    def _api(self, repo_type: str, segs: list[str], query: dict[str, list[str]]) -> None:
        repo = self._repo(repo_type, segs[0], segs[1])
        if repo is None:
            return
        rest = segs[2:]
        if rest and rest[-1] == "":
            rest = rest[:-1]
        if not rest or rest[0] == "revision":
            # GET /api/{type}s/{id} or /api/{type}s/{id}/revision/{rev}  (repo_info)
            if rest:
                matched = self._revision(repo, rest[1:])
                if matched is None:
                    return
            return self._json(
                {
                    "_id": repo.sha[:24],
                    "id": repo.repo_id,
                    "author": repo.repo_id.split("/")[0],
                    "sha": repo.sha,
                    "lastModified": COMMIT_DATE,
                    "createdAt": COMMIT_DATE,
                    "private": False,
                    "gated": False,
                    "disabled": False,
                    "tags": [],
                    "downloads": 0,
                    "likes": 0,
                    "cardData": {},
                    "siblings": [self._sibling(repo, p, query) for p in repo.files()],
                }
            )
        if rest[0] == "tree" and self.command == "GET":
            return self._tree(repo, rest[1:], query)
        if rest[0] == "paths-info" and self.command == "POST":
            return self._paths_info(repo, rest[1:])
        if rest[0] == "commits" and self.command == "GET":
            if self._revision(repo, rest[1:]) is None:
                return
            return self._json(
                [
                    {
                        "id": repo.sha,
                        "title": "initial commit",
                        "message": "",
                        "authors": [{"user": "fake"}],
                        "date": COMMIT_DATE,
                    }
                ]
            )
        if rest[0] == "refs" and self.command == "GET":
            branches = [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
                for n, s in repo.revisions.items()
                if n != s and not n.startswith("refs/")
            ]
            return self._json(
                {"branches": branches, "tags": [], "converts": [], "pullRequests": []}
            )
        return self._error(404, None, "no such api route")

    @staticmethod
    def _sibling(repo: Repo, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """A repo info's file; with ?blobs=true its size, blob id and LFS sha256, as the Hub
        writes them there (its tree entries say "oid" where siblings say "sha256")."""
        if query.get("blobs", ["false"])[0].lower() not in ("true", "1"):
            return {"rfilename": path}
        entry = repo.entry(path, expand=False)
        lfs = entry["lfs"]
        return {
            "rfilename": path, "size": entry["size"], "blobId": entry["oid"],
            "lfs": {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]},
        }  # fmt: skip

    def _tree(self, repo: Repo, segs: list[str], query: dict[str, list[str]]) -> None:
        # GET /api/{type}s/{id}/tree/{rev}[/{path}]?recursive=..&expand=..[&cursor=N]
        # huggingface_hub sends the path as ONE segment, quote(path, safe="") ("data%2Fx");
        # other clients send raw slashes. Both are accepted.
        matched = self._revision(repo, segs)
        if matched is None:
            return
        _, path_segs = matched
        path = "/".join(unquote(s) for s in path_segs if s).strip("/")
        full = repo.local(path) if path else repo.root
        if full is None or not os.path.exists(full):
            return self._error(404, "EntryNotFound", f'{path} does not exist on "main"')
        recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
        expand = query.get("expand", ["false"])[0].lower() in ("true", "1")
        if os.path.isfile(full):
            entries = [path]  # the Hub answers a file path with the file itself
        else:
            prefix = path + "/" if path else ""
            entries = []
            if recursive:
                seen_dirs = set()
                for f in repo.files():
                    if not f.startswith(prefix):
                        continue
                    parts = f[len(prefix) :].split("/")
                    for i in range(1, len(parts)):
                        d = prefix + "/".join(parts[:i])
                        if d not in seen_dirs:
                            seen_dirs.add(d)
                            entries.append(d)
                    entries.append(f)
            else:
                entries = [prefix + n for n in sorted(os.listdir(full))]
        # Cursor pagination through the Link header, as GitHub does:
        #   Link: <{endpoint}/api/...tree/...?recursive=..&expand=..&cursor=...>; rel="next"
        page_size = min(self.hub.page_size, 50) if expand else self.hub.page_size
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start : start + page_size]
        headers = {}
        if start + page_size < len(entries):
            split = urlsplit(self.path)
            flags = f"recursive={str(recursive).lower()}&expand={str(expand).lower()}"
            q = f"{flags}&cursor={start + page_size}"
            headers["Link"] = f'<{self.hub.endpoint}{split.path}?{q}>; rel="next"'
        self._json([repo.entry(p, expand) for p in page], headers=headers)

    def _paths_info(self, repo: Repo, segs: list[str]) -> None:
        # POST /api/{type}s/{id}/paths-info/{rev}, form body: paths=a&paths=b&expand=false
        # (the Hub also accepts JSON {"paths": [...], "expand": bool}). Missing paths are skipped.
        matched = self._revision(repo, segs)
        if matched is None:
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        self._body = raw
        if (self.headers.get("Content-Type") or "").startswith("application/json"):
            data = json.loads(raw or "{}")
            paths, expand = data.get("paths", []), bool(data.get("expand"))
        else:
            form = parse_qs(raw)
            paths = form.get("paths", [])
            expand = form.get("expand", ["false"])[0].lower() in ("true", "1")
        out = []
        for p in paths:
            p = p.strip("/")
            full = repo.local(p)
            if p and full is not None and os.path.exists(full):
                out.append(repo.entry(p, expand))
        self._json(out)

    # -- /[datasets/]{owner}/{name}/resolve/{rev}/{path} -------------------------------------
