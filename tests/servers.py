"""Local HTTP servers that tests read from, speaking the real protocols (HTTP Range)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCAL = "http://127.0.0.1"  # the base URL of test clients: a Host the server answers


class RangeServer:
    """Serves files from memory over HTTP with Range support (one range, or several answered
    multipart/byteranges), counting the body bytes sent and the Range headers asked.

    Hostile answers, for tests: `shift` answers that many ranges of data (not a file's tail,
    `bytes=-N`) with every byte moved one place (right length, wrong bytes); `extra` sends that
    many bytes more than asked after each answer (declared in Content-Length where
    `declare_extra`), counting in `extra_sent` those the client took; `dribble_s` sends each
    answer's body a byte at a time, that many seconds apart, counting in `dribbled`."""

    def __init__(
        self, files: dict[str, bytes], ranges: bool = True, multi_range: bool = True
    ) -> None:
        self.files = files
        self.bytes_sent = 0
        self.requests: list[str | None] = []
        self.shift = 0
        self.extra = 0
        self.declare_extra = True
        self.extra_sent = 0
        self.dribble_s = 0.0
        self.dribbled = 0
        self.hung_up = threading.Event()  # a client left during an answer
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.respond(body=False)

            def do_GET(self):
                self.respond(body=True)

            def respond(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                spec = self.headers.get("Range") if ranges else None
                if spec and "," in spec and not multi_range:
                    spec = None  # as servers that ignore several ranges: the whole file
                parts = _ranges(spec, len(data)) if spec else [(0, len(data) - 1)]
                if len(parts) > 1:
                    out, boundary = bytearray(), "b0undary"
                    for start, end in parts:
                        out += f"\r\n--{boundary}\r\nContent-Range: bytes {start}-{end}/".encode()
                        out += f"{len(data)}\r\n\r\n".encode() + data[start : end + 1]
                    out += f"\r\n--{boundary}--\r\n".encode()
                    kind = f"multipart/byteranges; boundary={boundary}"
                    self.answer(206, bytes(out), kind, None, body, parts, spec)
                    return
                start, end = parts[0]
                kind = "text/html; charset=utf-8" if path.endswith(".html") else None
                content_range = f"bytes {start}-{end}/{len(data)}" if spec else None
                status = 206 if spec else 200
                self.answer(status, data[start : end + 1], kind, content_range, body, parts, spec)

            def answer(self, status, out, kind, content_range, body, parts, spec) -> None:
                if body and spec and not spec.startswith("bytes=-") and server.shift > 0:
                    with lock:
                        server.shift -= 1
                    out = out[-1:] + out[:-1]
                extra = server.extra if body else 0
                if extra and not server.declare_extra:
                    self.close_connection = True
                self.send_response(status)
                if kind:
                    self.send_header("Content-Type", kind)
                if ranges:
                    self.send_header("Accept-Ranges", "bytes")
                if content_range:
                    self.send_header("Content-Range", content_range)
                if server.declare_extra or not extra:
                    self.send_header("Content-Length", str(len(out) + extra))
                self.end_headers()
                if body:
                    with lock:
                        server.bytes_sent += sum(end - start + 1 for start, end in parts)
                        server.requests.append(spec)
                    try:
                        self.send_body(out, extra)
                    except OSError:
                        server.hung_up.set()

            def send_body(self, out: bytes, extra: int) -> None:
                if server.dribble_s:
                    for i in range(len(out)):
                        self.wfile.write(out[i : i + 1])
                        self.wfile.flush()
                        with lock:
                            server.dribbled += 1
                        time.sleep(server.dribble_s)
                else:
                    self.wfile.write(out)
                chunk = bytes(1 << 16)
                while extra > 0:
                    self.wfile.write(chunk[: min(extra, len(chunk))])
                    with lock:
                        server.extra_sent += min(extra, len(chunk))
                    extra -= len(chunk)

        lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _ranges(spec: str, size: int) -> list[tuple[int, int]]:
    """bytes=a-b,c-,-n as inclusive (start, end) pairs."""
    out = []
    for one in spec.removeprefix("bytes=").split(","):
        first, last = one.strip().split("-")
        if first:
            out.append((int(first), min(int(last or size - 1), size - 1)))
        else:
            out.append((max(0, size - int(last)), size - 1))
    return out


class LiveServer:
    """The app under uvicorn, as `neurons serve` runs it (protocol, keep-alive), on an
    ephemeral loopback port (or `port`) in a background thread."""

    def __init__(self, app, settings, port: int = 0) -> None:
        import uvicorn

        from activation_server.cli import server_config

        config = server_config(app, settings.model_copy(update={"port": port}))
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
