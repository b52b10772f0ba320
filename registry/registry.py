"""The in-process registries of datasets and models, and lookups with helpful errors."""

from __future__ import annotations

import difflib

from registry.errors import RegistryConflictError, UnknownDatasetError, UnknownModelError
from registry.metadata import DatasetFormat, ModelMetadata, NeuronDatasetMetadata
from registry.vocabulary import AUTOENCODER_KIND, DerivedScalarType

NEURON_DATASET_METADATA_REGISTRY: dict[tuple[str, DerivedScalarType], NeuronDatasetMetadata] = {}
MODEL_REGISTRY: dict[str, ModelMetadata] = {}


def _put(registry: dict, key: object, value: object, what: str, replace: bool = False) -> None:
    existing = registry.get(key)
    if existing is not None and existing != value and not replace:
        raise RegistryConflictError(
            f"{what} {key!r} is already registered with different content; "
            f"registered: {existing.model_dump(exclude_none=True)}; "
            f"new: {value.model_dump(exclude_none=True)}. Use another short name, or "
            "replace=True to replace it."
        )
    registry[key] = value


def register_neuron_dataset_metadata(
    short_name: str,
    derived_scalar_type: str | DerivedScalarType,
    user_visible_name: str,
    neuron_dataset_path: str,
    format: str | DatasetFormat = DatasetFormat.TDB_JSON,
    model: str | None = None,
    corpus: str | None = None,
    revision: str | None = None,
    replace: bool = False,
) -> NeuronDatasetMetadata:
    """Register a dataset; the same content again is a no-op, different content an error
    (unless `replace`, as a notebook cell run again with a new path wants)."""
    metadata = NeuronDatasetMetadata(
        short_name=short_name,
        derived_scalar_type=derived_scalar_type,
        user_visible_name=user_visible_name,
        neuron_dataset_path=neuron_dataset_path,
        format=format,
        model=model,
        corpus=corpus,
        revision=revision,
    )
    _put(NEURON_DATASET_METADATA_REGISTRY, metadata.key, metadata, "dataset", replace)
    return metadata


def register_model(
    short_name: str,
    hf_path_or_id: str,
    gguf_file: str | None = None,
    revision: str | None = None,
    user_visible_name: str | None = None,
    refactor_glu: bool = False,
    bos_token: str | None = None,
    replace: bool = False,
) -> ModelMetadata:
    """Register a model by Hugging Face id or local folder (optionally a GGUF file in it)."""
    metadata = ModelMetadata(
        short_name=short_name,
        hf_path_or_id=hf_path_or_id,
        gguf_file=gguf_file,
        revision=revision,
        user_visible_name=user_visible_name or short_name,
        refactor_glu=refactor_glu,
        bos_token=bos_token,
    )
    _put(MODEL_REGISTRY, short_name, metadata, "model", replace)
    return metadata


def unregister_dataset(short_name: str, derived_scalar_type: str | None = None) -> int:
    """Forget a dataset (every type of it without `derived_scalar_type`); how many went."""
    keys = [
        key
        for key in NEURON_DATASET_METADATA_REGISTRY
        if key[0] == short_name and derived_scalar_type in (None, key[1], key[1].value)
    ]
    for key in keys:
        del NEURON_DATASET_METADATA_REGISTRY[key]
    return len(keys)


def unregister_model(short_name: str) -> bool:
    return MODEL_REGISTRY.pop(short_name, None) is not None


def find_model(short_name: str | None) -> ModelMetadata | None:
    """The model registered under this name, or None (no error: for checks that it changed)."""
    return MODEL_REGISTRY.get(short_name) if short_name else None


def is_registered(metadata: NeuronDatasetMetadata) -> bool:
    """Whether this very entry is still the one registered under its key (not replaced or
    removed since it was looked up)."""
    return NEURON_DATASET_METADATA_REGISTRY.get(metadata.key) is metadata


def get_all_neuron_dataset_metadata() -> list[NeuronDatasetMetadata]:
    return list(NEURON_DATASET_METADATA_REGISTRY.values())


def get_all_models() -> list[ModelMetadata]:
    return list(MODEL_REGISTRY.values())


def _suggest(word: str, choices: list[str]) -> list[str]:
    return difflib.get_close_matches(word, choices, n=3, cutoff=0.5)


def get_neuron_dataset_metadata_by_short_name_and_dst(
    short_name: str, dst: str | DerivedScalarType
) -> NeuronDatasetMetadata:
    """Look a dataset up; an unknown pair raises UnknownDatasetError saying what exists."""
    valid_dst = dst if isinstance(dst, DerivedScalarType) else _maybe_dst(dst)
    if valid_dst is not None:
        found = NEURON_DATASET_METADATA_REGISTRY.get((short_name, valid_dst))
        if found is not None:
            return found
    raise UnknownDatasetError(_unknown_dataset_message(short_name, str(dst), valid_dst))


def resolve_dataset(reference: str, dst: str | DerivedScalarType) -> NeuronDatasetMetadata:
    """A dataset named as neuron-explainer's clients name one: a registered short name, or a
    path or URL equal to a registered dataset's path. Anything else is an UnknownDatasetError
    listing what is registered: a client never makes the server read a path of its choosing."""
    valid_dst = dst if isinstance(dst, DerivedScalarType) else _maybe_dst(dst)
    if valid_dst is not None:
        found = NEURON_DATASET_METADATA_REGISTRY.get((reference, valid_dst))
        if found is not None:
            return found
        wanted = reference.rstrip("/")
        for metadata in NEURON_DATASET_METADATA_REGISTRY.values():
            same_path = metadata.neuron_dataset_path.rstrip("/") == wanted
            if same_path and metadata.derived_scalar_type == valid_dst:
                return metadata
    raise UnknownDatasetError(_unknown_dataset_message(reference, str(dst), valid_dst))


def _maybe_dst(value: str) -> DerivedScalarType | None:
    try:
        return DerivedScalarType(value)
    except ValueError:
        return None


def _unknown_dataset_message(short_name: str, dst: str, valid_dst: DerivedScalarType | None) -> str:
    keys = list(NEURON_DATASET_METADATA_REGISTRY)
    names = sorted({name for name, _ in keys})
    lines = [f'Could not find collated activation dataset for ("{short_name}", "{dst}").']
    if short_name in names:
        types_here = ", ".join(f'"{t}"' for n, t in keys if n == short_name)
        lines.append(f'"{short_name}" has datasets for: {types_here}.')
    else:
        close = _suggest(short_name, names)
        if close:
            lines.append("Did you mean: " + ", ".join(f'"{c}"' for c in close) + "?")
    if valid_dst is None:
        valid = ", ".join(f'"{t.value}"' for t in DerivedScalarType)
        lines.append(f'"{dst}" is not a derived scalar type; valid types are: {valid}.')
        close = _suggest(dst, [t.value for t in DerivedScalarType])
        if close:
            lines.append("Closest types: " + ", ".join(f'"{c}"' for c in close) + ".")
    lines.append("Available datasets are: " + ", ".join(f'("{n}", "{t}")' for n, t in keys) + ".")
    if short_name.endswith("_undefined"):
        # The seed registry's hint: the URL probably lacks the autoencoder name.
        kind = AUTOENCODER_KIND.get(valid_dst, "") if valid_dst else ""
        kind = f"{kind} " if kind else ""
        lines.append(f"May need to specify the {kind}autoencoder name in the URL.")
    return "\n".join(lines)


def get_model(short_name: str) -> ModelMetadata:
    """Look a model up; an unknown name raises UnknownModelError listing the models."""
    found = MODEL_REGISTRY.get(short_name)
    if found is not None:
        return found
    names = sorted(MODEL_REGISTRY)
    message = f'Unknown model "{short_name}".'
    close = _suggest(short_name, names)
    if close:
        message += " Did you mean: " + ", ".join(f'"{c}"' for c in close) + "?"
    message += " Available models are: " + ", ".join(f'"{n}"' for n in names) + "."
    raise UnknownModelError(message)
