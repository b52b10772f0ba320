"""Both searches over one set of models and record sources: the server's routes and the Python
API (activations.api) call these, so that they answer alike.

A prompt search runs on its model's worker thread, after the live requests before it (one
bounded queue per model). A token search reads a dataset's token index (token_index.py), built
on the CPU pool where it is missing or its records changed, once however many ask at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path

from activations.io.errors import RecordError
from activations.models.pool import ModelPool
from activations.pools import Pools
from activations.records.file_metadata import CollationMetadata, read_file_metadata
from activations.search.answers import (
    PromptSearchResult,
    SearchError,
    TokenHit,
    TokenSearchResult,
    dataset_of_model,
    page_of,
)
from activations.search.prompt import search_prompt
from activations.search.token_index import (
    TokenIndex,
    build_token_index,
    has_positions,
    index_paths,
    no_positions,
    write_token_index,
)
from activations.sources.catalog import RecordSources
from activations.sources.glu_source import GluDatasetSource
from registry import get_neuron_dataset_metadata_by_short_name_and_dst
from registry.metadata import DatasetFormat, NeuronDatasetMetadata
from registry.paths import local_path
from registry.vocabulary import DST_TO_HOOK, DerivedScalarType


class Searches:
    def __init__(self, models: ModelPool, sources: RecordSources, pools: Pools) -> None:
        self.models = models
        self.sources = sources
        self.pools = pools
        self._indexes: dict[str, TokenIndex] = {}
        self._building: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    async def prompt(
        self,
        model: str,
        text: str,
        dst: DerivedScalarType = DerivedScalarType.MLP_POST_ACT,
        token_index: int | None = None,
        top: int = 20,
        skip_first: bool = False,
        dataset: str | None = None,
    ) -> PromptSearchResult:
        """The top neurons of every layer of `model` on the text (see prompt.py), each with
        its page in `dataset` (a registered dataset of the model and type; by default the
        first one registered), where there is one."""
        self.models.get(model)  # an unknown model: the registry's message, before queueing
        dst = DerivedScalarType(dst)
        if dataset is not None:
            chosen = get_neuron_dataset_metadata_by_short_name_and_dst(dataset, dst)
            if chosen.model != model:
                raise SearchError(
                    f"dataset {dataset} is of model {chosen.model}, not {model}: its pages "
                    "would show other neurons"
                )
        result = await self.models.run(
            model, lambda runner: search_prompt(runner, text, dst, token_index, top, skip_first)
        )
        dataset = dataset or dataset_of_model(model, dst)
        if dataset is not None:
            result.dataset = dataset
            for hit in result.neurons:
                hit.page = page_of(dataset, dst, hit.layer, hit.neuron)
        return result

    async def token(
        self,
        metadata: NeuronDatasetMetadata,
        token: str | None = None,
        token_id: int | None = None,
        top: int = 20,
    ) -> TokenSearchResult:
        """The neurons of a dataset whose top examples (of its type's hook) peak on a token."""
        if top < 1:
            raise SearchError(f"top must be at least 1, not {top}")
        if metadata.format is not DatasetFormat.GLU_PARQUET:
            raise not_glu(metadata)
        if local_path(metadata.neuron_dataset_path) is None:  # said before anything is read
            raise SearchError(
                f"token search reads local files; {metadata.short_name} is remote: download its "
                "files and register the local copy"
            )
        return await self.pools.search.run(self._token, metadata, token, token_id, top)

    def _token(self, metadata, token, token_id, top) -> TokenSearchResult:
        source = self.sources.get(metadata)
        if not isinstance(source, GluDatasetSource):
            raise not_glu(metadata)
        dst = metadata.derived_scalar_type
        hook = DST_TO_HOOK[dst]  # the registry checked that the format holds it
        try:
            source.dataset.refresh()  # a file replaced under a running server is read anew
            description = source.dataset.describe()
            files = source.dataset.local_files
        except (RecordError, OSError) as error:  # missing: 404; unreadable: 502, as records
            raise source.error(error) from None
        file_metadata = read_file_metadata(description.get("metadata"))
        if not has_positions(description["columns"], hook):
            raise no_positions(f"{metadata.short_name} ({hook})")
        index = self._index(metadata, files, file_metadata)
        tokens = self._tokens(metadata, file_metadata)
        token_id, token = resolve_token(tokens.tokenizer, token, token_id)
        groups, total = index.query(hook, token_id, top)
        return TokenSearchResult(
            dataset=metadata.short_name, dst=dst, hook=hook, token=token, token_id=token_id,
            examples=total, indexed=index.size(hook),
            neurons=[
                TokenHit(**vars(g), page=page_of(metadata.short_name, dst, g.layer, g.neuron))
                for g in groups
            ],
        )  # fmt: skip

    def _tokens(self, metadata, file_metadata):
        try:
            return self.sources.example_text.corpora.tokens(metadata, file_metadata)
        except LookupError as error:
            raise SearchError(f"the token cannot be read without the tokenizer: {error}") from None

    def _index(self, metadata, files: list[str], file_metadata: CollationMetadata) -> TokenIndex:
        key = metadata.neuron_dataset_path
        held = self._indexes.get(key)
        if held is not None and held.made_from(files):
            return held
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one build per dataset, however many ask
            held = self._indexes.get(key)
            if held is None or not held.made_from(files):
                held = self._open_or_build(metadata, files, file_metadata)
                self._indexes[key] = held
            return held

    def _open_or_build(self, metadata, files, file_metadata) -> TokenIndex:
        local = files[0] if len(files) == 1 else str(Path(files[0]).parent)
        for path in index_paths(local):
            if path.exists():
                try:
                    index = TokenIndex.open(path)
                except (OSError, ValueError, KeyError):
                    continue  # unreadable: made anew below
                if index.made_from(files):
                    return index
        text = self.sources.example_text

        def document_ids(indices: list[int]):
            return text.corpora.document_ids(metadata, file_metadata, indices)

        try:
            table = build_token_index(files, document_ids)
        except LookupError as error:
            raise SearchError(
                f"indexing {metadata.short_name}'s examples by token needs its documents: {error}"
            ) from None
        written = write_token_index(table, local)
        return TokenIndex.open(written) if written is not None else TokenIndex(table)


def not_glu(metadata: NeuronDatasetMetadata) -> SearchError:
    return SearchError(
        f"token search reads GLU quadrant datasets; {metadata.short_name} is "
        f"{metadata.format.value} (neuron-explainer's records store no token ids)"
    )


def resolve_token(tokenizer, token: str | None, token_id: int | None) -> tuple[int, str]:
    """A token given as text (exactly one token of this tokenizer) or by id."""
    if (token is None) == (token_id is None):
        raise SearchError("give the token as text (token) or by id (tokenId), one of them")
    size = len(tokenizer)
    if token_id is not None:
        if not 0 <= token_id < size:
            raise SearchError(f"tokenId {token_id} is out of range: valid ids are 0-{size - 1}")
        return token_id, tokenizer.decode([token_id])
    if not token:
        raise SearchError("the token is empty: give one token's text, e.g. ' king'")
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise SearchError(
            f"{token!r} is {len(ids)} tokens for this model's tokenizer ({pieces}): give one "
            "token's text, or its id as tokenId"
        )
    return ids[0], token
