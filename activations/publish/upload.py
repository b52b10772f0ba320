"""`neurons push`: a collated file to a Hugging Face Hub dataset repo, through huggingface_hub's
own upload API, in one commit: the records as the published layout's shards, the card, and the
token index and explanations found beside the file.

huggingface_hub creates the repo if missing, asks the Hub which files it holds already
(preupload), uploads the rest (LFS, multi-part for large files; or Xet where the Hub offers it
and `hf_xet` is installed; HF_HUB_DISABLE_XET=1 for a Hub that speaks only LFS), and commits them
at once: a push that fails leaves the repo as it was, and the next one uploads only what the
Hub does not hold yet. HF_ENDPOINT and HF_TOKEN are honoured as they are when the push runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from activations.io import hub
from activations.publish.card import card_text, published_path
from activations.publish.names import DEFAULT_LICENSE
from activations.publish.shards import DATA_DIR, PublishError, stage_shards
from activations.search.token_index import INDEX_SUFFIX

EXPLANATIONS_SUFFIX = ".explanations"  # <file>.explanations/{layer}/{neuron}.jsonl
TOKEN_INDEX_IN_REPO = "extras/tokens.arrow"
EXPLANATIONS_IN_REPO = "explanations"
KEPT_ON_TOP = (".gitattributes",)  # what a new Hub repo holds: not "other files"


class HubPushError(PublishError):
    """The Hub refused or could not be reached; nothing was committed."""


@dataclass
class PushResult:
    repo_id: str
    path: str
    """The hf:// path that reads it back."""
    commit: str
    files: list[str]
    bytes: int
    """Bytes of the files committed (shards, card, extras)."""
    notes: list[str] = field(default_factory=list)


def beside_files(path: Path) -> dict[str, Path]:
    """Repo path -> local file, for the token index and the explanations beside the records."""
    out: dict[str, Path] = {}
    index = Path(str(path) + INDEX_SUFFIX)
    if index.is_file():
        out[TOKEN_INDEX_IN_REPO] = index
    explanations = Path(str(path) + EXPLANATIONS_SUFFIX)
    if explanations.is_dir():
        for file in sorted(explanations.rglob("*.jsonl")):
            relative = file.relative_to(explanations).as_posix()
            out[f"{EXPLANATIONS_IN_REPO}/{relative}"] = file
    return out


def _described(beside: dict[str, Path]) -> dict[str, str]:
    """What the card says of the files beside the records."""
    out = {}
    if TOKEN_INDEX_IN_REPO in beside:
        out[TOKEN_INDEX_IN_REPO] = (
            "the token index (Arrow IPC): every top example's token at its max, sorted by "
            "(hook, token, layer, neuron), for `search_token`"
        )
    n = sum(1 for p in beside if p.startswith(EXPLANATIONS_IN_REPO + "/"))
    if n:
        out[f"{EXPLANATIONS_IN_REPO}/"] = (
            f"explanations of {n} neurons, one `{{layer}}/{{neuron}}.jsonl` each"
        )
    return out


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    parts = repo_id.split("/")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise PublishError(f"{repo_id!r} is not a repo id: {error}") from None
    if len(parts) != 2:
        raise PublishError(f"{repo_id!r}: give the repo as OWNER/NAME")


def push(
    path: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    allow_existing: bool = False,
    license: str = DEFAULT_LICENSE,
    token: str | None = None,
    max_shard_bytes: int | None = None,
    commit_message: str | None = None,
) -> PushResult:
    """Push a collated file to the dataset repo `repo_id` (created if missing; refused where it
    holds other files, unless `allow_existing`: then one commit on top, with stale shards
    removed in it). The file is one shard as it is, unless it is larger than `max_shard_bytes`
    (then rewritten into shards of about that size) or of an older schema version."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    _check_repo_id(repo_id)
    path = Path(path)
    shards = stage_shards(path, max_shard_bytes)
    beside = beside_files(path)
    card = card_text(shards, repo_id, license, _described(beside)).encode()
    api = HfApi(endpoint=hub.endpoint(), token=token or hub.token())
    where = f"hf://datasets/{repo_id}"
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.dataset_info(repo_id, files_metadata=False)
        existing = sorted(s.rfilename for s in info.siblings or [])
        others = [f for f in existing if f not in KEPT_ON_TOP]
        if others and not allow_existing:
            shown = ", ".join(others[:5]) + (
                f" and {len(others) - 5} more" if len(others) > 5 else ""
            )
            raise PublishError(
                f"{where} exists and holds other files ({shown}); nothing was pushed. "
                "Push to a new repo, or with --allow-existing (one commit on top of them, "
                f"old {DATA_DIR}/ shards removed in it)"
            )
        ours = [*shards.paths, "README.md", *beside]
        stale = [f for f in others if f.startswith(f"{DATA_DIR}/") and f not in ours]
        operations = [
            *(CommitOperationAdd(p, str(local)) for p, local in shards.files.items()),
            CommitOperationAdd("README.md", card),
            *(CommitOperationAdd(p, str(local)) for p, local in beside.items()),
            *(CommitOperationDelete(p) for p in stale),
        ]
        message = commit_message or (
            f"neurons push: {shards.metadata.get('model')} over "
            f"{published_path(shards.metadata.get('corpus'))}"
        )
        commit = api.create_commit(
            repo_id, operations, commit_message=message, repo_type="dataset",
            parent_commit=info.sha,
        )  # fmt: skip
    except PublishError:
        raise
    except Exception as error:
        raise push_error(where, error) from None
    notes = list(shards.notes)
    if stale:
        notes.append(f"removed {len(stale)} old shard(s) of {DATA_DIR}/ in the same commit")
    size = shards.n_bytes + len(card) + sum(p.stat().st_size for p in beside.values())
    return PushResult(repo_id, where, commit.oid, ours, size, notes)


def push_error(where: str, error: BaseException) -> HubPushError:
    """What the Hub answered (its status named), as a push error that says nothing was
    committed and how to go on."""
    described = str(hub.hub_error(where, error))
    status = _status(error)
    if status == 401:
        described = (
            f"the Hugging Face Hub ({hub.endpoint()}) answered 401 (unauthorized: no token, or "
            "not a valid one; set HF_TOKEN to a token with write access)"
        )
    elif status == 403:
        described = (
            f"the Hugging Face Hub ({hub.endpoint()}) answered 403 (forbidden: the token may "
            f"not write to {where}; use a token with write access to its owner)"
        )
    elif status is None and "offline mode" not in described:
        described += "; run the same push again to go on (files the Hub holds are not resent)"
    return HubPushError(f"{described}. Nothing was committed to {where}")


def _status(error: BaseException) -> int | None:
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            return None
        status = getattr(getattr(seen, "response", None), "status_code", None)
        if status:
            return int(status)
        seen = seen.__cause__ or seen.__context__
    return None
