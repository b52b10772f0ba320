"""The file-level metadata `neurons collate` writes into a GLU quadrant file (key `neurons`),
typed: what collated it, over what, and how far it got.

Every field is optional (the published files carry none; older versions wrote fewer), and keys
of other writers are kept. In the file the keys are snake_case (the file format's names, which
its readers, ours and tools reading the Parquet metadata, share); on the wire (a record's
`fileMetadata`) they are camelCase, as in every answer, with the keys the file has and no
others; another writer's keys go as that writer wrote them. Python reads the snake_case names.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from registry.metadata import CamelModel


class PartialProgress(CamelModel):
    """A file written while its collation is under way (records over the documents so far)."""

    documents_done: int
    documents_total: int


class CollationMetadata(CamelModel):
    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())

    version: str | None = None
    """This package's version that wrote the file."""
    schema_version: str | None = None
    model: str | None = None
    """The registered short name of the model collated."""
    model_path: str | None = None
    gguf_file: str | None = None
    revision: str | None = None
    architecture: str | None = None
    hidden_act: str | None = None
    corpus: str | None = None
    """What the records' document indices point into (a corpus spec, `@N`: N tokens kept)."""
    corpus_sha256: dict[str, str] | None = None
    """Per document range `start-stop`, the corpus's fingerprint, to refuse an edited corpus."""
    documents: list[int] | None = None
    """The document range(s) collated, as [start, stop, start, stop, ...]."""
    documents_this_run: int | None = None
    n_documents: int | None = None
    n_tokens: int | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    """Tokens kept per document."""
    layers: list[int] | None = None
    model_layers: int | None = None
    all_layers: bool | None = None
    layers_note: str | None = None
    n_neurons: int | None = None
    layout: str | None = None
    """"glu" (quadrant records) or "plain" (one pseudo-quadrant of every token)."""
    refactor_glu: bool | None = None
    """Whether the values are GLUScope's refactored ones; None: the file does not say."""
    bos_token: str | None = None
    """The token put before each document where the tokenizer adds none (None: none)."""
    dtype: str | None = None
    batch_size: int | None = None
    world_size: int | None = None
    load_seconds: float | None = None
    partial: PartialProgress | None = None
    histogram: dict[str, Any] | None = None
    """The bins of the value histograms the file holds (registry.vocabulary's
    histogram_description when it was written): {hook, bins, zeroBin, innerEdges}."""

    def says(self, field: str) -> bool:
        """Whether the file has this key at all (`bos_token: null` says "none")."""
        return field in self.model_fields_set

    # no return annotation: the schema on the wire stays this model's fields
    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):  # noqa: ANN202
        data = handler(self)
        fields = type(self).model_fields
        said = {
            (fields[name].alias or name) if info.by_alias else name
            for name in self.model_fields_set
            if name in fields
        }
        kept = said | set(self.model_extra or {})
        return {key: value for key, value in data.items() if key in kept}


def read_file_metadata(raw: dict[str, Any] | None) -> CollationMetadata:
    """A file's metadata as typed; a key whose value is not of its type (another writer's) is
    left out, not the whole: a record is served whatever its file's metadata says."""
    raw = dict(raw or {})
    try:
        return CollationMetadata.model_validate(raw)
    except ValidationError as error:
        names = {f.alias: name for name, f in CollationMetadata.model_fields.items() if f.alias}
        for problem in error.errors():
            key = str(problem["loc"][0])
            raw.pop(key, None)
            raw.pop(names.get(key, key), None)  # an error names the field by its alias
    return CollationMetadata.model_validate(raw)
