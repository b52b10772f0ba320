"""Names and paths: which collated-activation dataset and which model a short name means."""

from registry.builtin import register_builtins
from registry.errors import (
    RegistryConflictError,
    UnknownDatasetError,
    UnknownModelError,
    UnsupportedPathError,
)
from registry.metadata import DatasetFormat, ModelMetadata, NeuronDatasetMetadata
from registry.references import model_for, register_glu_dataset
from registry.registry import (
    find_model,
    get_all_models,
    get_all_neuron_dataset_metadata,
    get_model,
    get_neuron_dataset_metadata_by_short_name_and_dst,
    is_registered,
    register_model,
    register_neuron_dataset_metadata,
    resolve_dataset,
    unregister_dataset,
    unregister_model,
)

register_builtins()

__all__ = [
    "DatasetFormat",
    "ModelMetadata",
    "NeuronDatasetMetadata",
    "RegistryConflictError",
    "UnknownDatasetError",
    "UnknownModelError",
    "UnsupportedPathError",
    "find_model",
    "get_all_models",
    "get_all_neuron_dataset_metadata",
    "get_model",
    "get_neuron_dataset_metadata_by_short_name_and_dst",
    "is_registered",
    "model_for",
    "register_glu_dataset",
    "register_model",
    "register_neuron_dataset_metadata",
    "resolve_dataset",
    "unregister_dataset",
    "unregister_model",
]
