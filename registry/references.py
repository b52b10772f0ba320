"""What people type for a model or a dataset, beyond registered short names: a model folder or a
Hugging Face id (`neurons collate --model ./mine`, `--model org/name`), registered on the fly;
and a GLU file registered for every hook it holds, in one call."""

from __future__ import annotations

import re
from pathlib import Path

from registry.columns import hooks_in_columns
from registry.errors import RegistryConflictError, UnknownModelError
from registry.metadata import DatasetFormat, ModelMetadata, NeuronDatasetMetadata
from registry.registry import MODEL_REGISTRY, get_model, register_model
from registry.registry import register_neuron_dataset_metadata as register_dataset
from registry.vocabulary import GLU_SITES

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def short_name_of(reference: str) -> str:
    """The short name a folder or Hub id is registered under: its last part, lower case."""
    last = reference.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9._-]+", "-", last.lower()).strip("-") or "model"


def model_for(reference: str) -> ModelMetadata:
    """A registered short name; else a model folder on this machine or a Hugging Face id,
    registered on the fly under `short_name_of(reference)`. Anything else: UnknownModelError
    listing the registered models and these two forms."""
    if reference in MODEL_REGISTRY:
        return MODEL_REGISTRY[reference]
    folder = Path(reference).expanduser()
    if folder.is_dir():
        source = str(folder.resolve())
    elif HUB_ID.fullmatch(reference) and not folder.exists():
        source = reference
    else:
        try:
            get_model(reference)
        except UnknownModelError as error:
            raise UnknownModelError(
                f"{error} A model folder (e.g. ./my-model, as save_pretrained writes it) or a "
                "Hugging Face id (org/name) is registered on the fly."
            ) from None
        raise AssertionError("unreachable")
    name = short_name_of(reference)
    held = MODEL_REGISTRY.get(name)
    if held is not None and held.hf_path_or_id != source:
        raise RegistryConflictError(
            f"model {name!r} is already registered for {held.hf_path_or_id}; register "
            f"{reference} under another short name (registry.register_model)"
        )
    return register_model(name, source, user_visible_name=reference)


def glu_hooks_in(path: str) -> list[str] | None:
    """The GLU hooks a local Parquet file has columns of; None where it cannot be read here."""
    local = Path(path).expanduser()
    if not local.is_file():
        return None
    try:
        import pyarrow.parquet as pq

        names = pq.read_schema(local).names
    except Exception:  # not Parquet: the server says so when it reads it
        return None
    held = hooks_in_columns(names)
    return [site.hook for site in GLU_SITES if site.hook in held]


def register_glu_dataset(
    short_name: str,
    path: str,
    model: str | None = None,
    corpus: str | None = None,
    user_visible_name: str | None = None,
    revision: str | None = None,
    replace: bool = False,
) -> list[NeuronDatasetMetadata]:
    """Register a GLU quadrant-record file (ours or the published layout) for every derived
    scalar whose hook it holds: one file, four datasets (mlp_pre_act, mlp_pre_linear,
    mlp_swish, mlp_post_act). A file not on this machine is registered for all four."""
    hooks = glu_hooks_in(path)
    registered = []
    for site in GLU_SITES:
        if hooks is not None and site.hook not in hooks:
            continue
        registered.append(
            register_dataset(
                short_name,
                site.dst,
                f"{user_visible_name or short_name} ({site.hook})",
                path,
                format=DatasetFormat.GLU_PARQUET,
                model=model,
                corpus=corpus,
                revision=revision,
                replace=replace,
            )
        )
    if not registered:
        raise ValueError(
            f"{path} has no GLU quadrant columns (such as gate+_in+_hook_post_mean); "
            "it was not written by `neurons collate` nor in the published layout"
        )
    return registered
