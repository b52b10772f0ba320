"""The local Hub stand-in (tests/hub.py) with the endpoints huggingface_hub uploads through, as
its own client calls them (HfApi.create_repo, create_commit, list_datasets, list_user_following):

    POST /api/repos/create                               {name, organization, type, visibility}
    POST /api/validate-yaml                              {content, repoType}
    POST /api/datasets/{id}/preupload/{rev}              {files: [{path, sample, size}]}
    POST /datasets/{id}.git/info/lfs/objects/batch       git-lfs batch API (basic, multipart)
    PUT  /_lfs/{oid}  |  /_lfs/{oid}/part/{n}            an object, or one part of it
    POST /_lfs/{oid}/complete                            {oid, parts: [{partNumber, etag}]}
    POST /api/datasets/{id}/commit/{rev}                 NDJSON: header, file, lfsFile, deleted*
    GET  /api/datasets?filter=&author=&search=&expand=   the listing, tags and card headers
    GET  /api/users/{user}/following

Uploads go through LFS only: set HF_HUB_DISABLE_XET=1 (huggingface_hub otherwise uploads through
Xet, which this stand-in does not speak). Writes need `Authorization: Bearer <token>` with a token
of `hub.tokens` mapped to "write" (401 without one, 403 for a "read" token). A commit lands at
once or not at all; objects uploaded without a commit stay in the LFS store, so the next push
sends only the rest. `hub.drop_uploads = n` reads the next n object bodies and closes the
connection without answering (a network failure mid-upload).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import threading
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from tests.hub import FakeHub
from tests.hub.handler import Handler as _Handler
from tests.hub.repos import sha40 as _sha40

LFS_SUFFIXES = (".parquet", ".arrow")
LFS_MIN_BYTES = 10 * 2**20  # the Hub's rule: larger files go through LFS whatever their name


class UploadHub(FakeHub):
    def __init__(self, root: str, chunk_size: int = 8 * 2**20, **options: Any) -> None:
        super().__init__(**options)
        self.storage = root  # repo folders and the LFS store
        self.chunk_size = chunk_size  # objects larger than this are uploaded in parts
        self.tokens: dict[str, str] = {"hf_write": "write", "hf_read": "read"}
        self.following: dict[str, list[str]] = {}
        self.private: set[tuple[str, str]] = set()
        self.drop_uploads = 0
        self.uploads: list[str] = []  # every object (or part) PUT received, complete or not
        self.bytes_received = 0  # request bodies of the write endpoints
        self.commits: list[tuple[str, str]] = []  # (repo id, commit sha)
        self.write_lock = threading.Lock()
        os.makedirs(self.lfs_dir, exist_ok=True)

    def count_received(self, n: int) -> None:
        with self._count_lock:
            self.bytes_received += n

    @property
    def lfs_dir(self) -> str:
        return os.path.join(self.storage, "_lfs")

    def start(self) -> UploadHub:
        hub = self

        class Handler(_UploadHandler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self


class _UploadHandler(_Handler):
    hub: UploadHub

    def _route(self) -> None:
        split = urlsplit(self.path)
        segs = [unquote(s) for s in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        path = split.path
        if path == "/api/validate-yaml" and self.command == "POST":
            return self._validate_yaml()
        if path == "/api/datasets" and self.command == "GET":
            return self._list(query)
        if len(segs) == 4 and segs[:2] == ["api", "users"] and segs[3] == "following":
            names = self.hub.following.get(segs[2], [])
            return self._json([{"user": n, "fullname": n, "avatarUrl": ""} for n in names])
        if segs and segs[0] == "_lfs":
            return self._lfs(segs[1:])
        if path.endswith(".git/info/lfs/objects/batch") and self.command == "POST":
            if (refused := self._refuse_write()) is None:
                return self._batch()
            return refused
        writes = ("repos", "preupload", "commit")
        if segs[:1] == ["api"] and any(w in segs[1:5] for w in writes) and self.command == "POST":
            if self._refuse_write() is not None:
                return
            if segs[1:3] == ["repos", "create"]:
                return self._create()
            if len(segs) >= 6 and segs[1] == "datasets" and segs[4] in ("preupload", "commit"):
                repo = self._repo("dataset", segs[2], segs[3])
                if repo is None:
                    return
                return self._preupload(repo) if segs[4] == "preupload" else self._commit(repo)
        return super()._route()

    do_PUT = _Handler._handle

    # -- plumbing ------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self.hub.count_received(len(out))
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.hub.count_received(len(data))
        return data

    def _body_json(self) -> Any:
        raw = self._read_body()
        self._body = raw[:2000].decode("utf-8", "replace")
        return json.loads(raw or b"{}")

    def _refuse_write(self) -> bool | None:
        """401 without a token, 403 with a read-only one; None where writing is allowed."""
        auth = self.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        role = self.hub.tokens.get(token or "")
        if role is None:
            self._read_body()
            self._error(401, None, "Invalid credentials in Authorization header")
            return True
        if role != "write":
            self._read_body()
            self._error(403, None, "You don't have the rights to write to this repository")
            return True
        return None

    # -- repos ---------------------------------------------------------------------------------

    def _create(self) -> None:
        body = self._body_json()
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or 'user'}/{body['name']}"
        url = f"{self.hub.endpoint}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
        with self.hub.write_lock:
            if (repo_type, repo_id) in self.hub.repos:
                return self._json({"error": "You already created this repo", "url": url}, 409)
            root = os.path.join(self.hub.storage, repo_type, repo_id)
            os.makedirs(root, exist_ok=True)
            with open(os.path.join(root, ".gitattributes"), "w") as f:
                f.write("*.parquet filter=lfs diff=lfs merge=lfs -text\n")
            self.hub.add_repo(repo_type, repo_id, root)
            if body.get("private") or body.get("visibility") == "private":
                self.hub.private.add((repo_type, repo_id))
        self._json({"url": url, "name": repo_id, "id": _sha40(repo_id)[:24]})

    def _validate_yaml(self) -> None:
        content = self._body_json().get("content", "")
        match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        try:
            data = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as error:
            return self._json({"errors": [{"message": str(error)}], "warnings": []}, 400)
        if match and not isinstance(data, dict):
            return self._json({"errors": [{"message": "not a mapping"}], "warnings": []}, 400)
        self._json({"errors": [], "warnings": []})

    def _list(self, query: dict[str, list[str]]) -> None:
        tags, author = query.get("filter", []), (query.get("author") or [None])[0]
        search = (query.get("search") or [""])[0].lower()
        out = []
        for (repo_type, repo_id), repo in sorted(self.hub.repos.items()):
            card = _card_data(repo.root)
            if repo_type != "dataset" or (repo_type, repo_id) in self.hub.private:
                continue
            if author and repo_id.split("/")[0] != author or search not in repo_id.lower():
                continue
            if not set(tags) <= set(card.get("tags") or []):
                continue
            out.append({
                "_id": repo.sha[:24], "id": repo_id, "author": repo_id.split("/")[0],
                "sha": repo.sha, "lastModified": "2024-01-01T00:00:00.000Z", "private": False,
                "tags": card.get("tags") or [], "cardData": card,
            })  # fmt: skip
        self._json(out)

    # -- uploads -------------------------------------------------------------------------------

    def _preupload(self, repo) -> None:
        files = []
        for entry in self._body_json().get("files", []):
            path, size = entry["path"], int(entry["size"])
            sample = base64.b64decode(entry.get("sample") or "")
            lfs = path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_BYTES or b"\0" in sample
            full = repo.local(path)
            oid = repo.hashes(path)[0] if full and os.path.isfile(full) else None
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular",
                          "shouldIgnore": False, "oid": oid})  # fmt: skip
        self._json({"files": files, "commitOid": repo.sha})

    def _batch(self) -> None:
        body = self._body_json()
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if not os.path.exists(os.path.join(self.hub.lfs_dir, oid)):
                href = f"{self.hub.endpoint}/_lfs/{oid}"
                if size > self.hub.chunk_size:
                    n = -(-size // self.hub.chunk_size)
                    header = {str(i): f"{href}/part/{i}" for i in range(1, n + 1)}
                    header["chunk_size"] = str(self.hub.chunk_size)
                    entry["actions"] = {"upload": {"href": f"{href}/complete", "header": header}}
                else:
                    entry["actions"] = {"upload": {"href": href}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   {"Content-Type": "application/vnd.git-lfs+json"})  # fmt: skip

    def _lfs(self, segs: list[str]) -> None:
        oid = segs[0] if segs else ""
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            return self._error(400, None, "bad oid")
        store = os.path.join(self.hub.lfs_dir, oid)
        if self.command == "PUT":
            data = self._read_body()
            self.hub.uploads.append(self.path)
            if self.hub.drop_uploads > 0:  # the body read, then the connection lost
                self.hub.drop_uploads -= 1
                self.close_connection = True
                return
            if len(segs) == 3 and segs[1] == "part":
                with open(f"{store}.part{int(segs[2])}", "wb") as f:
                    f.write(data)
                etag = hashlib.md5(data).hexdigest()
                return self._send(200, b"", {"ETag": f'"{etag}"'})
            return self._store(store, oid, data)
        if self.command == "POST" and segs[1:] == ["complete"]:
            body = self._body_json()
            numbers = sorted(p["partNumber"] for p in body.get("parts", []))
            parts = [f"{store}.part{n}" for n in numbers]
            return self._store(store, oid, parts)
        return self._error(404, None, "no such lfs route")

    def _store(self, store: str, oid: str, source: bytes | list[str]) -> None:
        """The object from its body or its parts (streamed, hashed on the way), kept only if
        its sha256 is its oid."""
        digest = hashlib.sha256()
        with open(store + ".tmp", "wb") as out:
            for part in [source] if isinstance(source, bytes) else source:
                if isinstance(part, bytes):
                    digest.update(part)
                    out.write(part)
                    continue
                with open(part, "rb") as f:
                    for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != oid:
            os.unlink(store + ".tmp")
            return self._error(400, None, "content does not match its oid")
        os.replace(store + ".tmp", store)
        for part in [] if isinstance(source, bytes) else source:
            os.unlink(part)
        self._send(200)

    def _commit(self, repo) -> None:
        lines = [json.loads(line) for line in self._read_body().splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        with self.hub.write_lock:
            parent = header.get("parentCommit")
            if parent and parent != repo.sha:
                return self._error(412, None, "A commit has happened since. Please refresh")
            writes: dict[str, bytes | str] = {}
            deletes: list[str] = []
            for item in lines:
                value = item["value"]
                if item["key"] == "file":
                    writes[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] == "lfsFile":
                    source = os.path.join(self.hub.lfs_dir, value["oid"])
                    if not os.path.exists(source):
                        return self._error(400, None, f"LFS object {value['oid']} not uploaded")
                    writes[value["path"]] = source
                elif item["key"] in ("deletedFile", "deletedFolder"):
                    deletes.append(value["path"])
            if any(repo.local(p) is None for p in [*writes, *deletes]):
                return self._error(400, None, "bad path")
            for path in deletes:  # everything checked: the commit lands whole
                full = repo.local(path)
                shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)
            for path, content in writes.items():
                full = repo.local(path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                if isinstance(content, bytes):
                    with open(full, "wb") as f:
                        f.write(content)
                else:
                    shutil.copyfile(content, full)
            sha = _sha40(f"{repo.sha}:{json.dumps(lines)}")
            old = repo.sha
            repo.revisions = {k: v for k, v in repo.revisions.items() if v != old or k != old}
            repo.revisions.update(main=sha, **{sha: sha})
            self.hub.commits.append((repo.repo_id, sha))
        prefix = "datasets/" if repo.repo_type == "dataset" else ""
        url = f"{self.hub.endpoint}/{prefix}{repo.repo_id}/commit/{sha}"
        self._json({"success": True, "commitOid": sha, "pullRequestUrl": None, "commitUrl": url})


def _card_data(root: str) -> dict[str, Any]:
    try:
        with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return {}
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    data = yaml.safe_load(match.group(1)) if match else None
    return data if isinstance(data, dict) else {}


def serve_uploads(monkeypatch, tmp_path, local_hub):
    """For a fixture: the stand-in Hub in local_hub's place: HF_ENDPOINT at it, a write
    token in HF_TOKEN, uploads through LFS (HF_HUB_DISABLE_XET: the stand-in speaks no Xet)."""
    import huggingface_hub.constants

    local_hub.stop()
    hub = UploadHub(str(tmp_path / "hub-storage")).start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        yield hub
    finally:
        hub.stop()
