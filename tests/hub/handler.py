"""The stand-in Hub's request handler: plumbing (answers, errors, the log, faults) and routing;
the routes themselves are api_routes.py's and file_routes.py's."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.hub.api_routes import ApiRoutes
from tests.hub.file_routes import FileRoutes
from tests.hub.repos import TYPES, Repo

if TYPE_CHECKING:
    from tests.hub.server import FakeHub


class Handler(ApiRoutes, FileRoutes, BaseHTTPRequestHandler):
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
        if segs and segs[0] == "api" and len(segs) >= 3 and segs[1] in TYPES:
            if len(segs) == 3 or segs[3] == "":
                # a one-segment id ("gpt2"): huggingface_hub < 2 tries one when a path's
                # "owner/name" is not found; it must read RepoNotFound, not a bare 404
                return self._error(404, "RepoNotFound", "Repository not found")
            return self._api(TYPES[segs[1]], segs[2:], query)
        # /{owner}/{name}/resolve/{rev}/{path...}, /datasets/..., /spaces/...
        repo_type = "model"
        if segs and segs[0] in ("datasets", "spaces"):
            repo_type, segs = TYPES[segs[0]], segs[1:]
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
