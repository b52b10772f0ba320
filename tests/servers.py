"""Local HTTP servers that tests read from, speaking the real protocols (HTTP Range)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCAL = "http://127.0.0.1"  # the base URL of test clients: a Host the server answers


class RangeServer:
    """Serves files from memory over HTTP with Range support, counting the body bytes sent."""

    def __init__(self, files: dict[str, bytes], ranges: bool = True) -> None:
        self.files = files
        self.bytes_sent = 0
        self.requests: list[str | None] = []
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.respond(body=False)

            def do_GET(self):
                self.respond(body=True)

            def respond(self, body: bool) -> None:
                data = server.files.get(self.path.split("?", 1)[0])
                if data is None:
                    self.send_error(404)
                    return
                start, end, status = 0, len(data) - 1, 200
                spec = self.headers.get("Range") if ranges else None
                if spec:
                    first, last = spec.removeprefix("bytes=").split("-")
                    if first:
                        start, end = int(first), min(int(last or end), end)
                    else:
                        start = max(0, len(data) - int(last))
                    status = 206
                self.send_response(status)
                if self.path.split("?", 1)[0].endswith(".html"):
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                if ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if body:
                    with lock:
                        server.bytes_sent += end - start + 1
                        server.requests.append(spec)
                    self.wfile.write(data[start : end + 1])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class LiveServer:
    """The app under uvicorn, as `neurons serve` runs it (protocol, keep-alive), on an
    ephemeral loopback port in a background thread."""

    def __init__(self, app, settings) -> None:
        import time

        import uvicorn

        from activation_server.cli import server_config

        config = server_config(app, settings.model_copy(update={"port": 0}))
        self.app = app
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HangingServer:
    """Accepts connections and never answers (a hung upstream); counts what it accepted."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.accepted: list = []
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()
