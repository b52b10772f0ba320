"""The files of a dataset and how to open each: local Parquet files (a file, a folder of them, or
its `data/`), an hf:// dataset repo (its `data/*.parquet` shards, listed through
huggingface_hub at the pinned revision), or one http(s):// URL. Remote files are read by byte ranges
(remote.py), with the sizes and versions the listing gives.
"""

from __future__ import annotations

import glob as globbing
import os
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow.parquet as pq

from activations.io import hub
from activations.io.byte_cache import ByteCache
from activations.io.errors import RecordNotFoundError, UpstreamError
from activations.io.remote import RemoteFile, Transport
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
    remote = RemoteFile(path, Transport(timeout_s=timeout_s), cache)
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


def _parquet_in(siblings: dict[str, object], folder: str) -> dict[str, object]:
    """The .parquet files directly in one folder of a repo ("": its root)."""
    prefix = f"{folder}/" if folder else ""
    return {
        name: sibling
        for name, sibling in siblings.items()
        if name.startswith(prefix) and "/" not in name[len(prefix) :] and name.endswith(".parquet")
    }


def _hub_files(path: str, revision: str | None, timeout_s: float, cache: ByteCache):
    """The repo's Parquet files (root or data/), with their sizes and versions: one request,
    huggingface_hub's repo info with its files' metadata (its file system would ask for the
    repo's info, then list the folder: a round trip more before a first record)."""
    where = hub.HubPath.parse(path, revision)
    try:
        info = hub.api().dataset_info(
            where.repo_id, revision=where.revision, files_metadata=True, timeout=timeout_s
        )
    except Exception as error:
        raise hub.hub_error(path, error) from None
    siblings = {s.rfilename: s for s in info.siblings or []}
    if where.path.endswith(".parquet"):
        found = {where.path: siblings[where.path]} if where.path in siblings else {}
        if not found:
            raise hub.hub_error(path, FileNotFoundError(where.path))
    else:  # data/ first, where `push_to_hub` puts a dataset's files
        inside = f"{where.path}/data" if where.path else "data"
        found = _parquet_in(siblings, inside) or _parquet_in(siblings, where.path)
    if not found:
        raise RecordNotFoundError(
            f"no parquet files in {path} (looked for *.parquet and data/*.parquet)"
        )
    transport = hub.transport(timeout_s)
    files = []
    for in_repo in sorted(found):
        sibling = found[in_repo]
        etag = sibling.lfs.sha256 if sibling.lfs else sibling.blob_id
        remote = RemoteFile(where.url(in_repo), transport, cache, etag=etag)
        shown = f"hf://{where.fs_root}/{in_repo}"
        files.append(_remote(shown, remote, sibling.size))
    return files
