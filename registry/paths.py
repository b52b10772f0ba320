"""Which path schemes datasets may live under, checked once at registration."""

from __future__ import annotations

from urllib.parse import urlparse

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
    scheme = urlparse(path).scheme.lower()
    return "" if len(scheme) == 1 else scheme


def validate_path(path: str) -> str:
    """Return the path unchanged if its scheme is supported, else say which are."""
    if not isinstance(path, str) or not path.strip():
        raise UnsupportedPathError("a dataset path must be a non-empty string")
    scheme = path_scheme(path)
    if scheme not in SUPPORTED_SCHEMES:
        valid = ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES if s) + ", or a local path"
        raise UnsupportedPathError(
            f"unsupported path scheme {scheme + '://'!r} in {path!r}; supported are {valid}"
        )
    return path


def local_path(path: str) -> str | None:
    """The file-system path of a local or file:// path, else None."""
    scheme = path_scheme(path)
    if scheme == "":
        return path
    if scheme == "file":
        return urlparse(path).path
    return None
