"""The one parser of dataset paths: which schemes are supported (checked at registration), what
local file a path names, and how parts join onto a path."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

from registry.errors import UnsupportedPathError

# scheme -> the library that reads it
SUPPORTED_SCHEMES: dict[str, str] = {
    "": "local file system",
    "file": "local file system",
    "http": "aiohttp / fsspec (ranged reads)",
    "https": "aiohttp / fsspec (ranged reads)",
    "az": "blobfile",
    "gs": "blobfile",
    "hf": "huggingface_hub's fsspec file system",
}


def path_scheme(path: str) -> str:
    """The scheme of a path; '' for a plain local path (Windows drive letters included)."""
    scheme = urlsplit(path).scheme.lower()
    return "" if len(scheme) == 1 else scheme


def validate_path(path: str) -> str:
    """Return the path unchanged if its scheme is supported (and a file:// URL names this
    machine), else say what is valid."""
    if not isinstance(path, str) or not path.strip():
        raise UnsupportedPathError("a dataset path must be a non-empty string")
    scheme = path_scheme(path)
    if scheme not in SUPPORTED_SCHEMES:
        valid = ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES if s) + ", or a local path"
        raise UnsupportedPathError(
            f"unsupported path scheme {scheme + '://'!r} in {path!r}; supported are {valid}"
        )
    local_path(path)  # a file:// URL of another host is refused here, at registration
    return path


def local_path(path: str) -> str | None:
    """The file-system path of a local path or file:// URL (percent-escapes decoded), else
    None. A file:// URL that names another host is refused: it is not a local file."""
    scheme = path_scheme(path)
    if scheme == "":
        return path
    if scheme != "file":
        return None
    split = urlsplit(path)
    if split.netloc not in ("", "localhost"):
        raise UnsupportedPathError(
            f"file:// URL {path!r} names host {split.netloc!r}; only local files can be read "
            "(file:///path or file://localhost/path)"
        )
    return url2pathname(split.path)


def join_path(base: str, *parts: str) -> str:
    """base/part/... for URLs (query strings kept at the end) and local paths alike; slashes at
    the ends of base and parts do not double."""
    if not base:
        raise ValueError("join_path needs a non-empty base path")
    cleaned = [p.strip("/") for p in parts if p.strip("/")]
    if path_scheme(base) == "":
        return os.path.join(base, *cleaned)
    split = urlsplit(base)
    path = "/".join([split.path.rstrip("/"), *cleaned])
    return urlunsplit(split._replace(path=path))
