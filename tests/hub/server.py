"""The stand-in Hub itself: its repos, its log and faults, and the server thread."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from tests.hub.handler import Handler
from tests.hub.repos import Repo, sha40


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
        sha = sha40(f"{repo_type}/{repo_id}/{os.path.abspath(root)}")
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

        class BoundHandler(Handler):
            pass

        BoundHandler.hub = hub
        self._server = ThreadingHTTPServer((self.host, self.port), BoundHandler)
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
