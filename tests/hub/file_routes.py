"""The stand-in Hub's file route: /[datasets/]{owner}/{name}/resolve/{rev}/{path}, with Range
(one range, or several answered multipart/byteranges)."""

from __future__ import annotations

import email.utils
import os
import re
from urllib.parse import quote, unquote


class FileRoutes:
    """A mixin of handler.Handler (its _repo, _revision, _send, _error)."""

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
