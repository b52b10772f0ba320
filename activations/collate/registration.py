"""A file `neurons collate` wrote, registered by its path: what `neurons serve --dataset FILE`,
`neurons explain --dataset FILE` and `api.open_file` do, in one place."""

from __future__ import annotations

from pathlib import Path

from activations.collate.writer import read_metadata
from registry import find_model, model_for, register_glu_dataset


def register_file(path: str) -> str:
    """A file `neurons collate` wrote, registered for every hook it holds under its model's
    short name (returned), with the model (registered from its path where unknown) and the
    corpus it names: what `neurons serve --dataset FILE` does."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        metadata = read_metadata(path)
    except Exception as error:  # not Parquet
        raise ValueError(f"{path}: not a Parquet file ({error})") from None
    if not metadata:
        raise ValueError(f"{path}: not a file `neurons collate` wrote (no metadata)")
    model = metadata.get("model")
    if model and find_model(model) is None and metadata.get("model_path"):
        model = model_for(metadata["model_path"]).short_name
    name = model or Path(path).stem
    register_glu_dataset(
        name, str(Path(path).resolve()), model=model, corpus=metadata.get("corpus"),
        user_visible_name=name, replace=True,
    )  # fmt: skip
    return name
