"""Reading from the Hugging Face Hub: `hf://` paths listed through huggingface_hub's own API
(one repo-info request with the files' sizes and LFS hashes), honouring HF_ENDPOINT and HF_TOKEN
when they are read (not only at import) and the revision pinned in the registry; and the Hub's
failures said as such (its status, its reason).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from activations.io.errors import (
    RecordError,
    UpstreamError,
    UpstreamTimeoutError,
)
from activations.io.remote import Transport


def endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def token() -> str | None:
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


@dataclass(frozen=True)
class HubPath:
    """hf://datasets/owner/name[@revision][/path] as its parts."""

    repo_id: str
    revision: str | None
    path: str

    @classmethod
    def parse(cls, url: str, revision: str | None = None) -> HubPath:
        rest = url.removeprefix("hf://").removeprefix("datasets/").strip("/")
        parts = rest.split("/")
        if len(parts) < 2:
            raise UpstreamError(f"{url}: an hf:// dataset path is hf://datasets/owner/name[/...]")
        repo, at, pinned = "/".join(parts[:2]).partition("@")
        return cls(repo, pinned if at else revision, "/".join(parts[2:]))

    @property
    def fs_root(self) -> str:
        """The repo at its revision as an hf:// path names it (datasets/owner/name@rev)."""
        rev = f"@{self.revision}" if self.revision else ""
        return f"datasets/{self.repo_id}{rev}"

    def url(self, path_in_repo: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(
            self.repo_id,
            path_in_repo,
            repo_type="dataset",
            revision=self.revision,
            endpoint=endpoint(),
        )


def warm_up() -> None:
    """Import and make what a first hf:// read needs: huggingface_hub imports its API lazily
    (about 0.4 s on a first request otherwise), and the HTTP clients."""
    from huggingface_hub import get_session

    from activations.io import http_client

    api()
    get_session()  # with its TLS context, made once per process
    http_client.blocking()


def api():
    """huggingface_hub's HfApi at the current endpoint and token."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(), token=token())


def transport(timeout_s: float) -> Transport:
    """Range requests to the Hub with huggingface_hub's headers (its user agent) and the token
    (the listing before them went through huggingface_hub itself, offline mode included)."""
    from huggingface_hub.utils import build_hf_headers

    return Transport(
        headers=lambda: build_hf_headers(token=token()),
        describe=lambda url: f"the Hugging Face Hub ({endpoint()}) for {url}",
        timeout_s=timeout_s,
    )


def hub_error(path: str, error: BaseException) -> RecordError:
    """What huggingface_hub raised, as a record error naming the Hub and its answer."""
    if isinstance(error, RecordError):
        return error
    causes, seen = [], error
    while seen is not None and len(causes) < 5:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    names = {c.__name__ for e in causes for c in type(e).__mro__}
    where = f"the Hugging Face Hub ({endpoint()}) for {path}"
    status = next(
        (getattr(getattr(e, "response", None), "status_code", None) for e in causes
         if getattr(getattr(e, "response", None), "status_code", None)),
        None,
    )  # fmt: skip
    if "OfflineModeIsEnabled" in names:
        return UpstreamError(f"{where}: not asked, offline mode is on (HF_HUB_OFFLINE=1)")
    if names & {"GatedRepoError"}:
        return UpstreamError(
            f"{where} answered {status or 403} (gated: accept its terms, set HF_TOKEN)"
        )
    if names & {"RepositoryNotFoundError"}:
        return UpstreamError(
            f"{where} answered {status or 404} (repository not found, or private: set HF_TOKEN)"
        )
    if names & {"RevisionNotFoundError"}:
        return UpstreamError(f"{where} answered {status or 404} (revision not found)")
    if names & {"EntryNotFoundError", "RemoteEntryNotFoundError"} or (
        isinstance(error, FileNotFoundError) and status is None
    ):
        return UpstreamError(f"{where} answered 404 (no such file or folder)")
    if names & {"TimeoutException", "ReadTimeout", "ConnectTimeout", "TimeoutError"}:
        return UpstreamTimeoutError(f"{where}: no answer in time")
    if status is not None:
        reasons = {401: "unauthorized: set HF_TOKEN", 403: "forbidden", 429: "rate limited"}
        return UpstreamError(f"{where} answered {status} ({reasons.get(status, 'an error')})")
    reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    return UpstreamError(f"{where} could not be reached ({reason})")
