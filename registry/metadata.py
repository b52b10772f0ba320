"""The registry's records, and the one camelCase base model every JSON body of this project uses
(neuron-explainer's wire style)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel

from registry.paths import validate_path
from registry.vocabulary import GLU_DSTS, GLU_SITES, QUADRANTS_TABLE, DerivedScalarType


class CamelModel(BaseModel):
    """Serialises camelCase (dump with by_alias=True), accepts snake_case and camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _RegistryEntry(CamelModel):
    """Frozen (entries are shared) and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetFormat(str, Enum):
    TDB_JSON = "tdb_json"
    """One neuron-explainer JSON record per neuron at {path}/{layer}/{neuron}.json."""
    GLU_PARQUET = "glu_parquet"
    """One row per neuron in the OLMo-7B-0424 neuron-activations (GLU quadrant) schema."""


class NeuronDatasetMetadata(_RegistryEntry):
    short_name: str
    """Short name for the dataset, like "gpt2-small"."""
    derived_scalar_type: DerivedScalarType
    """What the records' values are, e.g. mlp_post_act."""
    user_visible_name: str
    """Name for humans to read, like "GPT-2 small - MLP neurons"."""
    neuron_dataset_path: str
    """Where the collated activations live: local, file://, http(s)://, az://, gs:// or hf://."""
    format: DatasetFormat = DatasetFormat.TDB_JSON
    model: str | None = None
    """Short name of the registered model that produced it, if any."""
    corpus: str | None = None
    """What the records' document indices point into."""
    revision: str | None = None
    """For an hf:// dataset: the revision (branch, tag or commit) to read; its latest if None."""

    @field_validator("neuron_dataset_path")
    @classmethod
    def _supported_path(cls, path: str) -> str:
        return validate_path(path)

    @model_validator(mode="after")
    def _format_holds_the_type(self) -> NeuronDatasetMetadata:
        """A GLU quadrant file holds the GLU sites' values only: another type registered with
        it would be served as some other hook's records."""
        if self.format == DatasetFormat.GLU_PARQUET and self.derived_scalar_type not in GLU_DSTS:
            held = ", ".join(d.value for d in GLU_DSTS)
            raise ValueError(
                f"format {DatasetFormat.GLU_PARQUET.value!r} holds the derived scalar types "
                f"{held}, not {self.derived_scalar_type.value!r}; register "
                f"{self.derived_scalar_type.value!r} with format "
                f"{DatasetFormat.TDB_JSON.value!r} (neuron-explainer's JSON records)"
            )
        return self

    @property
    def key(self) -> tuple[str, DerivedScalarType]:
        return (self.short_name, self.derived_scalar_type)


class ModelMetadata(_RegistryEntry):
    short_name: str
    hf_path_or_id: str
    """A Hugging Face model id, a local folder, or "package:NAME" for a folder shipped in an
    installed Python package (how the embedded model is found offline)."""
    gguf_file: str | None = None
    revision: str | None = None
    user_visible_name: str
    refactor_glu: bool = False
    """Looked at as GLUScope refactors it (in and W_out negated for neurons whose gate and in
    weights point apart): its datasets were collated so, and live values are shown so."""
    bos_token: str | None = None
    """A token put before every text where the tokenizer adds none of its own: the texts of
    the published OLMo-7B files start with <|endoftext|>, which OLMo's tokenizer does not add."""


class HookDescription(CamelModel):
    """One GLU site of the vocabulary, for clients."""

    hook: str
    dst: DerivedScalarType
    label: str
    card_position: int
    max_gate_signs: list[int]
    """The gate signs of the quadrants that keep this hook's top examples."""
    flips_with_refactor: bool


class QuadrantDescription(CamelModel):
    name: str
    gate_sign: int
    in_sign: int
    short: str


class VocabularyDescription(CamelModel):
    """The vocabulary for clients (GET /schema): what each hook and quadrant is called."""

    hooks: list[HookDescription]
    quadrants: list[QuadrantDescription]
    derived_scalar_types: list[DerivedScalarType]


def describe_vocabulary() -> VocabularyDescription:
    return VocabularyDescription(
        hooks=[
            HookDescription(
                hook=s.hook,
                dst=s.dst,
                label=s.label,
                card_position=s.card_position,
                max_gate_signs=list(s.max_gate_signs),
                flips_with_refactor=s.flips_with_refactor,
            )
            for s in GLU_SITES
        ],
        quadrants=[
            QuadrantDescription(
                name=q.name, gate_sign=q.gate_sign, in_sign=q.in_sign, short=q.short
            )
            for q in QUADRANTS_TABLE
        ],
        derived_scalar_types=list(DerivedScalarType),
    )
