"""The files of a dataset and how to open each: local Parquet files (a file, a folder of them, or
its `data/`), an hf:// dataset repo (its `data/*.parquet` shards, through huggingface_hub's file
system at the pinned revision), or one http(s):// URL. Remote files are read by byte ranges
(remote.py), with the sizes and versions the listing gives.
"""

from __future__ import annotations

import glob as globbing
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from activations.records import hub
from activations.records.byte_cache import ByteCache
from activations.records.errors import RecordNotFoundError, UpstreamError
from activations.records.remote import RemoteFile, Transport
from registry.paths import local_path, path_scheme

PARTIAL_SUFFIX = ".partial.parquet"  # activations.collate.progress.partial_path

# Opens a reader of one file: given the parsed footer (or None the first time), a ParquetFile.
Opener = Callable[["pq.FileMetaData | None"], "pq.ParquetFile"]


@dataclass
class DatasetFile:
    name: str
    """Shown in messages: the local path or the remote URL."""
    open: Opener
    remote: RemoteFile | None
    identity: tuple
    """What changes when the file does (size, version): the key of its cached index."""


_HTTP: dict[float, Any] = {}
_HTTP_LOCK = threading.Lock()


def http_transport(timeout_s: float) -> Transport:
    """One shared httpx client per timeout for plain http(s) URLs."""
    import httpx

    with _HTTP_LOCK:
        client = _HTTP.get(timeout_s)
        if client is None:
            client = _HTTP[timeout_s] = httpx.Client(follow_redirects=True)
    return Transport(client=lambda: client, timeout_s=timeout_s)


def dataset_files(
    path: str, revision: str | None, timeout_s: float, cache: ByteCache
) -> list[DatasetFile]:
    local = local_path(path)
    if local is not None:
        return [_local(f) for f in _local_files(path, local)]
    scheme = path_scheme(path)
    if scheme == "hf":
        return _hub_files(path, revision, timeout_s, cache)
    if scheme not in ("http", "https"):
        raise UpstreamError(
            f"{path}: GLU Parquet datasets are read from local files, hf:// repos and "
            f"http(s):// URLs, not {scheme}:// (neuron-explainer's JSON datasets may be there)"
        )
    remote = RemoteFile(path, http_transport(timeout_s), cache)
    return [_remote(path, remote, None)]


def _local_files(path: str, root: str) -> list[str]:
    if root.endswith(".parquet") or os.path.isfile(root):
        if not os.path.exists(root):
            partial = root + PARTIAL_SUFFIX  # a collation under way writes its records so far
            if os.path.exists(partial):
                return [partial]
            raise FileNotFoundError(f"no such dataset file or folder: {path}")
        return [root]
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such dataset file or folder: {path}")
    base = root.rstrip("/")
    files = sorted(globbing.glob(f"{globbing.escape(base)}/*.parquet")) or sorted(
        globbing.glob(f"{globbing.escape(base)}/data/*.parquet")
    )
    if not files:
        raise FileNotFoundError(
            f"no parquet files in {path} (looked for *.parquet and data/*.parquet)"
        )
    return files


def _local(file: str) -> DatasetFile:
    def open_reader(footer: pq.FileMetaData | None) -> pq.ParquetFile:
        return pq.ParquetFile(
            file, metadata=footer, pre_buffer=False, page_checksum_verification=True
        )

    st = os.stat(file)
    return DatasetFile(file, open_reader, None, (file, st.st_size, st.st_mtime_ns))


def _remote(name: str, remote: RemoteFile, size: int | None) -> DatasetFile:
    def open_reader(footer: pq.FileMetaData | None) -> pq.ParquetFile:
        if footer is None:
            remote.open(size)
        # pre_buffer off: the chunks an answer needs are fetched together beforehand
        # (ParquetPart.read_group); pyarrow then reads them from what was fetched
        return pq.ParquetFile(
            remote.reader(), metadata=footer, pre_buffer=False, page_checksum_verification=True
        )

    return DatasetFile(name, open_reader, remote, (name, size, remote.etag))


def _parquet_in(fs, folder: str) -> dict[str, dict]:
    """The .parquet files of one folder of a repo (none where there is no such folder)."""
    try:
        entries = fs.ls(folder, detail=True)
    except FileNotFoundError as error:
        causes = {type(c).__name__ for c in (error.__cause__, error.__context__) if c}
        if causes & {"RepositoryNotFoundError", "RevisionNotFoundError", "GatedRepoError"}:
            raise  # the repo or revision, not the folder, is missing
        return {}
    return {e["name"]: e for e in entries if e["type"] == "file" and e["name"].endswith(".parquet")}


def _hub_files(path: str, revision: str | None, timeout_s: float, cache: ByteCache):
    """The repo's Parquet files (root or data/), listed with their sizes and versions."""
    where = hub.HubPath.parse(path, revision)
    try:
        fs = hub.file_system()
        root = where.fs_root + (f"/{where.path}" if where.path else "")
        if root.endswith(".parquet"):
            found = {root: fs.info(root)}
        else:  # data/ first, where `push_to_hub` puts a dataset's files: one listing
            found = _parquet_in(fs, f"{root}/data") or _parquet_in(fs, root)
    except Exception as error:
        raise hub.hub_error(path, error) from None
    if not found:
        raise RecordNotFoundError(
            f"no parquet files in {path} (looked for *.parquet and data/*.parquet)"
        )
    transport = hub.transport(timeout_s)
    files = []
    for name in sorted(found):
        info = found[name]
        in_repo = name.split(where.fs_root, 1)[1].lstrip("/")
        etag = (info.get("lfs") or {}).get("sha256") or (info.get("lfs") or {}).get("oid")
        remote = RemoteFile(where.url(in_repo), transport, cache, etag=etag or info.get("oid"))
        shown = f"hf://{where.fs_root}/{in_repo}"
        files.append(_remote(shown, remote, int(info["size"])))
    return files
