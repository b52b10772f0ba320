"""A local stand-in for the Hugging Face Hub's HTTP API (what huggingface_hub and datasets use),
for tests and benchmarks: no internet needed.

Serves local folders as model / dataset repos, read-only, to `huggingface_hub` (HfFileSystem,
hf_hub_download, HfApi.repo_info/list_repo_tree/get_paths_info) and `datasets.load_dataset`,
when HF_ENDPOINT (read by huggingface_hub at *import* time) or `HfFileSystem(endpoint=...)`
points at it. Standard library only; runs in a background thread:

    hub = FakeHub()
    hub.add_repo("dataset", "owner/name", "/path/to/folder")   # revision "main" + its sha
    hub.add_repo("model", "owner/model", "/path/to/other", revisions=("main", "v1"))
    hub.start()            # 127.0.0.1, free port; hub.endpoint == "http://127.0.0.1:PORT"
    ...
    hub.stop()

Every request is appended to hub.log as (method, raw_path_and_query, status, range_header) as its
answer starts, and the body bytes sent are counted in hub.bytes_sent. `hub.latency_s` delays
every answer (a remote hub's round trip). A Range of several byte ranges is answered 206
multipart/byteranges, as HTTP servers that support it do.
`hub.fault` may be set to a callable(method, path) -> None | int | (int, dict) | float | "drop":
an int answers with that status (and no body), (int, dict) adds headers (X-Error-Code...), a float
sleeps that many seconds first, "drop" closes the connection without an answer.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_COMMIT_DATE = "2024-01-01T00:00:00.000Z"


def _sha40(text: str) -> str:
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
            self._hashes[key] = (_sha40(stamp), hashlib.sha256(stamp.encode()).hexdigest())
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
                "oid": _sha40("tree:" + path),
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
            out["lastCommit"] = {"id": self.sha, "title": "initial commit", "date": _COMMIT_DATE}
        return out


class FakeHub:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 1000,
        content_hashes: bool = True,
    ):
        self.host, self.port = host, port
        self.content_hashes = content_hashes
        self.page_size = page_size  # the Hub: 1000 per tree page (50 with expand=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[tuple[str, str, int, str | None]] = []
        self.bytes_sent = 0
        self.bytes_by_path: dict[str, int] = {}  # body bytes of files, by request path
        self.latency_s = 0.0
        self.fault: Callable[[str, str], Any] | None = None
        self.record_headers = False  # if True, hub.header_log gets (method, path, headers, body)
        self.header_log: list[tuple[str, str, dict[str, str], str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set = set()  # open (kept-alive) client sockets
        self._count_lock = threading.Lock()

    # -- setup -------------------------------------------------------------------------------

    def add_repo(
        self, repo_type: str, repo_id: str, root: str, revisions: tuple[str, ...] = ("main",)
    ) -> Repo:
        # the commit names the content's folder too: a client's cache of another replica under
        # the same repo id is not taken for this one
        sha = _sha40(f"{repo_type}/{repo_id}/{os.path.abspath(root)}")
        revs = {name: sha for name in revisions}
        revs[sha] = sha
        repo = Repo(repo_type, repo_id, os.path.abspath(root), revs, self.content_hashes)
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def count_bytes(self, path: str, n: int) -> None:
        with self._count_lock:
            self.bytes_sent += n
            self.bytes_by_path[path] = self.bytes_by_path.get(path, 0) + n

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection: the hub is gone, also for clients
        holding a kept-alive connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK
    # add ~40 ms to every small response on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        head: bool = False,
    ):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)
        self._status = status

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None):
        body = json.dumps(obj).encode()
        self._send(
            status,
            body,
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
            head=self.command == "HEAD",
        )

    def _error(
        self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None
    ):
        # huggingface_hub picks its exception class from X-Error-Code: RepoNotFound,
        # RevisionNotFound, EntryNotFound, GatedRepo; the message goes in X-Error-Message.
        message = message.encode("ascii", "backslashreplace").decode()  # headers are latin-1
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._json({"error": message}, status, headers)

    def setup(self) -> None:
        super().setup()
        self.hub._connections.add(self.connection)

    def finish(self) -> None:
        self.hub._connections.discard(self.connection)
        super().finish()

    def send_response(self, code: int, message: str | None = None) -> None:
        # logged as the answer starts, so that a client holding the answer finds it logged
        self._status = code
        self._log()
        super().send_response(code, message)

    def _log(self) -> None:
        if self._logged:
            return
        self._logged = True
        self.hub.log.append((self.command, self.path, self._status, self.headers.get("Range")))

    def _handle(self) -> None:
        self._status = 0
        self._logged = False
        self._body = None  # the handler object lives as long as the kept-alive connection
        try:
            if self.hub.latency_s:
                time.sleep(self.hub.latency_s)
            fault = self.hub.fault(self.command, self.path) if self.hub.fault else None
            if fault == "drop":  # close the connection without answering
                self.close_connection = True
                return
            if isinstance(fault, float):
                time.sleep(fault)
            elif isinstance(fault, int):
                return self._send(fault, head=self.command == "HEAD")
            elif isinstance(fault, tuple):
                return self._send(fault[0], headers=fault[1], head=self.command == "HEAD")
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._log()  # a request answered by a dropped connection
            if self.hub.record_headers:
                body = getattr(self, "_body", None)
                self.hub.header_log.append((self.command, self.path, dict(self.headers), body))

    do_GET = do_HEAD = do_POST = _handle

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the client closed a kept-alive connection (e.g. an abandoned stream)

    # -- routing -------------------------------------------------------------------------------

    def _route(self) -> None:
        split = urlsplit(self.path)
        segs = split.path.split("/")[1:]  # still percent-encoded
        query = parse_qs(split.query)
        if split.path == "/api/agent-harnesses":
            # huggingface_hub >= 2.x fetches this once a day (3 s timeout, errors swallowed) to
            # fill the user-agent, unless HF_HUB_DISABLE_TELEMETRY=1. An empty registry.
            return self._json({"standardEnvVars": [], "harnesses": {}})
        if segs and segs[0] == "api" and len(segs) >= 3 and segs[1] in _TYPES:
            if len(segs) == 3 or segs[3] == "":
                # a one-segment id ("gpt2"): huggingface_hub < 2 tries one when a path's
                # "owner/name" is not found; it must read RepoNotFound, not a bare 404
                return self._error(404, "RepoNotFound", "Repository not found")
            return self._api(_TYPES[segs[1]], segs[2:], query)
        # /{owner}/{name}/resolve/{rev}/{path...}, /datasets/..., /spaces/...
        repo_type = "model"
        if segs and segs[0] in ("datasets", "spaces"):
            repo_type, segs = _TYPES[segs[0]], segs[1:]
        if len(segs) >= 4 and segs[2] == "resolve":
            return self._resolve(repo_type, segs)
        return self._error(404, None, "no such route")

    def _repo(self, repo_type: str, owner: str, name: str) -> Repo | None:
        repo = self.hub.repos.get((repo_type, f"{unquote(owner)}/{unquote(name)}"))
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
        return repo

    def _revision(self, repo: Repo, segs: list[str]) -> tuple[str, list[str]] | None:
        """Match the revision at the start of segs: one %2F-encoded segment, or a raw
        'refs/convert/parquet'-like run of segments. Returns (sha, remaining segments)."""
        for n in range(1, len(segs) + 1):
            rev = unquote("/".join(segs[:n]))
            if rev in repo.revisions:
                return repo.revisions[rev], segs[n:]
            if not segs[0].startswith("refs"):
                break
        self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(segs[0]) if segs else ''}")
        return None

    # -- /api/{type}s/{owner}/{name}[/...] --------------------------------------------------

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
                    "lastModified": _COMMIT_DATE,
                    "createdAt": _COMMIT_DATE,
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
                        "date": _COMMIT_DATE,
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

    def _resolve(self, repo_type: str, segs: list[str]) -> None:
        repo = self._repo(repo_type, segs[0], segs[1])
        if repo is None:
            return
        matched = self._revision(repo, segs[3:])
        if matched is None:
            return
        sha, path_segs = matched
        path = "/".join(unquote(s) for s in path_segs)
        full = repo.local(path)
        if not path or full is None or not os.path.isfile(full):
            # X-Repo-Commit on a 404 lets hf_hub_download cache the file's absence.
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": sha})
        size = os.path.getsize(full)
        git_oid, sha256 = repo.hashes(path)
        # hf_hub_download needs X-Repo-Commit and an ETag (X-Linked-Etag wins over ETag) on the
        # HEAD; size from X-Linked-Size or Content-Length. HfFileSystem needs 206 + the exact
        # bytes for "Range: bytes=a-b"; 416 for a start past the end.
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{sha256}"',
            "X-Repo-Commit": sha,
            "X-Linked-Etag": f'"{sha256}"',
            "X-Linked-Size": str(size),
            "Last-Modified": email.utils.formatdate(os.path.getmtime(full), usegmt=True),
            "Content-Disposition": f'inline; filename="{quote(os.path.basename(path))}"',
        }
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and "," in rng:
            return self._multipart(full, size, rng, headers)
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if not m or (m.group(1) == "" and m.group(2) == ""):
                return self._send(
                    416, headers={"Content-Range": f"bytes */{size}"}, head=self.command == "HEAD"
                )
            if m.group(1) == "":  # suffix: last N bytes
                start = max(0, size - int(m.group(2)))
            else:
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
            if start >= size or start > end:
                return self._send(
                    416, headers={"Content-Range": f"bytes */{size}"}, head=self.command == "HEAD"
                )
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        headers["Content-Length"] = str(length)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "GET" and length:
            self.hub.count_bytes(self.path, length)  # counted before the client can have them
            with open(full, "rb") as f:
                f.seek(start)
                left = length
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)

    def _multipart(self, full: str, size: int, spec: str, headers: dict[str, str]) -> None:
        """Range: bytes=a-b,c-d,... answered 206 multipart/byteranges (RFC 9110 14.6)."""
        parts = []
        for one in spec.split("=", 1)[1].split(","):
            a, _, b = one.strip().partition("-")
            start, end = int(a), min(int(b), size - 1)
            if start > end or start >= size:
                return self._send(416, headers={"Content-Range": f"bytes */{size}"})
            parts.append((start, end))
        boundary = "neurons_byteranges"
        heads = [
            (
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n"
            ).encode()
            for start, end in parts
        ]
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = sum(len(h) for h in heads) + sum(e - s + 1 for s, e in parts) + len(tail)
        headers = {k: v for k, v in headers.items() if k != "Content-Type"}
        headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
        headers["Content-Length"] = str(length)
        self.hub.count_bytes(self.path, sum(end - start + 1 for start, end in parts))
        self._send(206, b"", headers, head=self.command == "HEAD")
        if self.command != "GET":
            return
        with open(full, "rb") as f:  # streamed part by part, as an HTTP server sends it
            for head, (start, end) in zip(heads, parts, strict=True):
                f.seek(start)
                self.wfile.write(head)
                self.wfile.write(f.read(end - start + 1))
            self.wfile.write(tail)
