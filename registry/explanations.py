"""Explanation datasets beside neuron datasets: which explanation datasets a neuron dataset
has (as TDB's AZURE_EXPLANATION_DATASET_REGISTRY maps its collated activations to their
published explanations), and where this project writes its own.

An explanation dataset is neuron-explainer's layout: `{path}/{layer}/{neuron}.jsonl`, one
NeuronSimulationResults per file. A GLU neuron's quadrants each have an explanation dataset of
their own (`{path}/quadrants/{quadrant}`), so that each file stays what neuron-explainer's
readers open: its strict loader refuses any field it does not know."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from registry.locations import neurons_home
from registry.metadata import _RegistryEntry
from registry.paths import join_path, validate_path
from registry.vocabulary import QUADRANTS, DerivedScalarType

QUADRANTS_FOLDER = "quadrants"


class ExplanationDatasetMetadata(_RegistryEntry):
    neuron_dataset: str
    """The short name of the neuron dataset it explains."""
    derived_scalar_type: DerivedScalarType
    name: str
    """How answers name it (TDB's `datasetName`)."""
    explanation_dataset_path: str
    """Local, file://, http(s)://, az://, gs:// or hf://."""
    quadrant: str | None = None
    """The GLU quadrant its explanations are of; None: the neuron's positive activations."""

    @classmethod
    def _checked(cls, **fields) -> ExplanationDatasetMetadata:
        validate_path(fields["explanation_dataset_path"])
        quadrant = fields.get("quadrant")
        if quadrant is not None and quadrant not in QUADRANTS:
            raise ValueError(f"unknown quadrant {quadrant!r}; valid: {', '.join(QUADRANTS)}")
        return cls(**fields)


EXPLANATION_DATASET_REGISTRY: dict[
    tuple[str, DerivedScalarType], list[ExplanationDatasetMetadata]
] = {}


def register_explanation_dataset(
    neuron_dataset: str,
    derived_scalar_type: str | DerivedScalarType,
    explanation_dataset_path: str,
    name: str | None = None,
    quadrant: str | None = None,
) -> ExplanationDatasetMetadata:
    """Add an explanation dataset to a neuron dataset's (the same one again is a no-op)."""
    entry = ExplanationDatasetMetadata._checked(
        neuron_dataset=neuron_dataset,
        derived_scalar_type=DerivedScalarType(derived_scalar_type),
        name=name or explanation_dataset_path.rstrip("/").split("/")[-1],
        explanation_dataset_path=explanation_dataset_path,
        quadrant=quadrant,
    )
    found = EXPLANATION_DATASET_REGISTRY.setdefault((neuron_dataset, entry.derived_scalar_type), [])
    if entry not in found:
        found.append(entry)
    return entry


def registered_explanation_datasets(
    neuron_dataset: str, derived_scalar_type: str | DerivedScalarType
) -> list[ExplanationDatasetMetadata]:
    return list(
        EXPLANATION_DATASET_REGISTRY.get(
            (neuron_dataset, DerivedScalarType(derived_scalar_type)), []
        )
    )


def default_explanation_root(neuron_dataset: str, derived_scalar_type: str) -> Path:
    """Where explanations of a neuron dataset are written unless a path is named:
    $NEURONS_HOME/explanations/{short name}/{type}."""
    return (
        neurons_home()
        / "explanations"
        / neuron_dataset
        / DerivedScalarType(derived_scalar_type).value
    )


def written_explanation_datasets(
    neuron_dataset: str,
    derived_scalar_type: str | DerivedScalarType,
    root: str | Path | None = None,
    quadrants: tuple[str, ...] = (),
) -> list[ExplanationDatasetMetadata]:
    """The explanation datasets this project writes for a neuron dataset, under `root` (the
    default root where None): the positive activations', then each quadrant's."""
    dst = DerivedScalarType(derived_scalar_type)
    base = str(root) if root is not None else str(default_explanation_root(neuron_dataset, dst))
    found = [
        ExplanationDatasetMetadata._checked(
            neuron_dataset=neuron_dataset,
            derived_scalar_type=dst,
            name=f"{neuron_dataset}-explanations",
            explanation_dataset_path=base,
        )
    ]
    for quadrant in quadrants:
        found.append(
            ExplanationDatasetMetadata._checked(
                neuron_dataset=neuron_dataset,
                derived_scalar_type=dst,
                name=f"{neuron_dataset}-explanations {quadrant}",
                explanation_dataset_path=join_path(base, QUADRANTS_FOLDER, quadrant),
                quadrant=quadrant,
            )
        )
    return found


# -- explainers: the models that explain and simulate ------------------------------------------


class ExplainerMetadata(_RegistryEntry):
    short_name: str
    kind: Literal["in_process", "openai"]
    model: str
    """in_process: a registered model's short name (any causal LM with a chat template);
    openai: the model name the server knows."""
    base_url: str | None = None
    """openai: the server's address, e.g. http://127.0.0.1:8080/v1 (llama.cpp, vLLM, Ollama)."""
    api_key_env: str | None = None
    """openai: the environment variable holding the key (none needed by most local servers)."""
    timeout_s: float = 60.0
    max_concurrency: int = 4
    max_retries: int = 2
    logprobs: bool = True
    """openai: whether the server's completions endpoint gives echo + logprobs (neuron-
    explainer's all-at-once simulator); False: the logprob-free simulator (chat)."""
    dtype: str | None = None
    """in_process: explain and simulate with a copy of the model in this dtype (e.g.
    "bfloat16": 2-3x faster passes on a CPU with AMX or AVX512-BF16); "auto": bfloat16 where
    the device multiplies it natively (such a CPU, a GPU that supports it), else as loaded;
    None: the model as loaded."""


EXPLAINER_REGISTRY: dict[str, ExplainerMetadata] = {}
DEFAULT_EXPLAINER = "embedded"


def register_explainer(short_name: str, kind: str, model: str, **options) -> ExplainerMetadata:
    """Register an explainer backend by name (the same one again is a no-op; another under a
    taken name replaces it: explainers hold no data)."""
    entry = ExplainerMetadata(short_name=short_name, kind=kind, model=model, **options)
    EXPLAINER_REGISTRY[short_name] = entry
    return entry


def get_explainer(short_name: str | None = None) -> ExplainerMetadata:
    name = short_name or DEFAULT_EXPLAINER
    found = EXPLAINER_REGISTRY.get(name)
    if found is None:
        from registry.errors import UnknownModelError

        known = ", ".join(f'"{n}"' for n in sorted(EXPLAINER_REGISTRY))
        raise UnknownModelError(f'Unknown explainer "{name}". Registered explainers: {known}.')
    return found
