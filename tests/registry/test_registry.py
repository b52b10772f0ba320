from __future__ import annotations

import pytest
from pydantic import ValidationError

import registry
from registry.builtin import NEURON_EXPLAINER_DATASETS, OLMO_DATASET
from registry.metadata import DatasetFormat, NeuronDatasetMetadata
from registry.vocabulary import DerivedScalarType

SEED_PATHS = {
    ("gpt2-xl", "mlp_post_act"): "https://openaipublic.blob.core.windows.net/neuron-explainer/data/collated-activations/",
    ("gpt2-small", "mlp_post_act"): "https://openaipublic.blob.core.windows.net/neuron-explainer/gpt2_small_data/collated-activations/",
    ("gpt2-small", "attn_write_norm"): "https://openaipublic.blob.core.windows.net/neuron-explainer/gpt2_small/attn_write_norm/collated-activations-by-token-pair",
    ("gpt2-small_ae-mlp-post-act-v1", "mlp_autoencoder_latent"): "https://openaipublic.blob.core.windows.net/neuron-explainer/gpt2_small/autoencoder_latent/mlp_post_act_v1/collated-activations",
    ("gpt2-small_ae-resid-delta-mlp-v1", "mlp_autoencoder_latent"): "https://openaipublic.blob.core.windows.net/neuron-explainer/gpt2_small/autoencoder_latent/resid_delta_mlp_v1/collated-activations",
    ("gpt2-small_ae-mlp-post-act-v4", "mlp_autoencoder_latent"): "https://openaipublic.blob.core.windows.net/neuron-explainer/gpt2_small/autoencoder_latent/mlp_post_act_v4/collated-activations",
    ("gpt2-small_ae-resid-delta-mlp-v4", "mlp_autoencoder_latent"): "https://openaipublic.blob.core.windows.net/neuron-explainer/gpt2_small/autoencoder_latent/resid_delta_mlp_v4/collated-activations",
    ("gpt2-small_ae-resid-delta-attn-v4", "attention_autoencoder_latent"): "https://openaipublic.blob.core.windows.net/neuron-explainer/gpt2_small/autoencoder_latent/resid_delta_attn_v4/collated-activations",
    ("gpt2-small_ae-resid-delta-attn-v4", "flattened_attn_write_to_latent_summed_over_heads"): "https://openaipublic.blob.core.windows.net/neuron-explainer/gpt2_small/autoencoder_latent/resid_delta_attn_v4/collated-activations-by-token-pair",
}  # fmt: skip


@pytest.mark.parametrize(("key", "path"), SEED_PATHS.items())
def test_every_seed_entry_has_its_exact_path(key, path):
    metadata = registry.get_neuron_dataset_metadata_by_short_name_and_dst(*key)
    assert metadata.neuron_dataset_path == path
    assert metadata.format == DatasetFormat.TDB_JSON


def test_the_seed_datasets_are_exactly_the_neuron_explainer_ones():
    tdb = {d.key for d in registry.get_all_neuron_dataset_metadata() if d.format == "tdb_json"}
    assert {(name, DerivedScalarType(dst)) for name, dst in SEED_PATHS} == tdb
    assert len(NEURON_EXPLAINER_DATASETS) == len(SEED_PATHS)


@pytest.mark.parametrize("short_name", ["olmo-7b", "smollm2-135m"])
@pytest.mark.parametrize("dst", ["mlp_post_act", "mlp_pre_act", "mlp_pre_linear", "mlp_swish"])
def test_glu_entries(short_name, dst):
    metadata = registry.get_neuron_dataset_metadata_by_short_name_and_dst(short_name, dst)
    assert metadata.format == DatasetFormat.GLU_PARQUET
    assert metadata.model == short_name
    registry.get_model(metadata.model)  # the model it names is registered
    if short_name == "olmo-7b":
        assert metadata.neuron_dataset_path == OLMO_DATASET
        assert metadata.corpus == "hf:sjgerstner/dolma-small"
        assert registry.get_model("olmo-7b").hf_path_or_id == "allenai/OLMo-7B-0424-hf"


def test_register_same_content_is_noop_and_different_is_refused():
    args = dict(
        short_name="mine",
        derived_scalar_type="mlp_post_act",
        user_visible_name="Mine",
        neuron_dataset_path="/data/mine.parquet",
        format="glu_parquet",
    )
    first = registry.register_neuron_dataset_metadata(**args)
    assert registry.register_neuron_dataset_metadata(**args) == first
    with pytest.raises(registry.RegistryConflictError, match="already registered"):
        registry.register_neuron_dataset_metadata(**{**args, "neuron_dataset_path": "/other"})
    # the stored entry is unchanged
    found = registry.get_neuron_dataset_metadata_by_short_name_and_dst("mine", "mlp_post_act")
    assert found.neuron_dataset_path == "/data/mine.parquet"

    registry.register_model("m", "org/m", user_visible_name="M")
    registry.register_model("m", "org/m", user_visible_name="M")
    with pytest.raises(registry.RegistryConflictError):
        registry.register_model("m", "org/other", user_visible_name="M")
    assert registry.get_model("m").hf_path_or_id == "org/m"


@pytest.mark.parametrize(
    "path",
    [
        "/local/x",
        "relative/x",
        "file:///x",
        "https://h/x",
        "http://127.0.0.1:1/x",
        "az://a/b",
        "gs://b/x",
        "hf://datasets/a/b",
    ],
)
def test_supported_schemes(path):
    """Every supported scheme is registered as written and found again."""
    registry.register_neuron_dataset_metadata("s", "mlp_post_act", "S", path)
    found = registry.get_neuron_dataset_metadata_by_short_name_and_dst("s", "mlp_post_act")
    assert found.neuron_dataset_path == path


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("s3://bucket/x", "unsupported path scheme 's3://'"),
        ("ftp://h/x", "supported are file://, http://, https://, az://, gs://, hf://"),
        ("", "a dataset path must be a non-empty string"),
        ("file://server/x", "names host 'server'"),
    ],
)
def test_bad_scheme_rejected_with_the_valid_ones(path, message):
    with pytest.raises(ValidationError) as info:
        registry.register_neuron_dataset_metadata("s", "mlp_post_act", "S", path)
    assert message in str(info.value)
    with pytest.raises(registry.UnknownDatasetError):
        registry.get_neuron_dataset_metadata_by_short_name_and_dst("s", "mlp_post_act")


def test_unknown_name_lists_pairs_and_suggests():
    with pytest.raises(registry.UnknownDatasetError) as info:
        registry.get_neuron_dataset_metadata_by_short_name_and_dst("olmo-7", "mlp_post_act")
    message = str(info.value)
    assert '("olmo-7", "mlp_post_act")' in message
    assert 'Did you mean: "olmo-7b"' in message
    assert '("gpt2-small", "attn_write_norm")' in message  # every available pair is listed
    assert isinstance(info.value, LookupError)


def test_unknown_type_lists_valid_types():
    with pytest.raises(registry.UnknownDatasetError) as info:
        registry.get_neuron_dataset_metadata_by_short_name_and_dst("olmo-7b", "mlp_post")
    message = str(info.value)
    assert '"mlp_post" is not a derived scalar type' in message
    for dst in DerivedScalarType:
        assert dst.value in message
    assert 'Closest types: "mlp_post_act"' in message


def test_known_name_wrong_type_says_what_the_name_has():
    with pytest.raises(registry.UnknownDatasetError) as info:
        registry.get_neuron_dataset_metadata_by_short_name_and_dst("gpt2-xl", "mlp_pre_act")
    assert '"gpt2-xl" has datasets for: "mlp_post_act"' in str(info.value)


def test_unknown_name_and_type():
    with pytest.raises(registry.UnknownDatasetError) as info:
        registry.get_neuron_dataset_metadata_by_short_name_and_dst("smolm2-135m", "swish")
    message = str(info.value)
    assert 'Did you mean: "smollm2-135m"' in message
    assert "valid types are" in message
    assert 'Closest types: "mlp_swish"' in message


def test_autoencoder_hint_is_kept():
    with pytest.raises(registry.UnknownDatasetError) as info:
        registry.get_neuron_dataset_metadata_by_short_name_and_dst(
            "gpt2-small_undefined", "attention_autoencoder_latent"
        )
    assert "May need to specify the attention autoencoder name in the URL." in str(info.value)


def test_unknown_model_lists_models():
    with pytest.raises(registry.UnknownModelError) as info:
        registry.get_model("smollm2")
    assert '"smollm2-135m"' in str(info.value) and "Available models" in str(info.value)


def test_json_accepts_both_spellings_and_writes_camel_case():
    camel = {
        "shortName": "x",
        "derivedScalarType": "mlp_post_act",
        "userVisibleName": "X",
        "neuronDatasetPath": "/x",
    }
    snake = {
        "short_name": "x",
        "derived_scalar_type": "mlp_post_act",
        "user_visible_name": "X",
        "neuron_dataset_path": "/x",
    }
    a = NeuronDatasetMetadata.model_validate(camel)
    b = NeuronDatasetMetadata.model_validate(snake)
    assert a == b
    assert set(camel) <= set(a.model_dump(by_alias=True))
    with pytest.raises(ValidationError):
        a.short_name = "y"  # frozen


def test_a_format_that_cannot_hold_the_type_is_refused_at_registration():
    """A GLU quadrant file holds the GLU sites only: another type with it is an error naming
    the types it holds and the format that holds the one asked for, and nothing is stored."""
    with pytest.raises(ValueError) as info:
        registry.register_neuron_dataset_metadata(
            "mine", "attn_write_norm", "Mine", "/data/mine.parquet", format="glu_parquet"
        )
    message = str(info.value)
    assert "'glu_parquet' holds the derived scalar types mlp_pre_act" in message
    assert "not 'attn_write_norm'" in message and "'tdb_json'" in message
    with pytest.raises(registry.UnknownDatasetError):
        registry.get_neuron_dataset_metadata_by_short_name_and_dst("mine", "attn_write_norm")
    # the same type in neuron-explainer's format is fine
    registry.register_neuron_dataset_metadata(
        "mine", "attn_write_norm", "Mine", "/data/mine", format="tdb_json"
    )


def test_a_glu_file_is_registered_for_the_hooks_its_columns_hold(tmp_path):
    """hook_pre is a prefix of hook_pre_linear: a file of hook_pre_linear columns alone is not
    taken for one of hook_pre (one column parser, registry.columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from registry.columns import parse_column

    columns = ["layer", "neuron", "gate+_in+_freq", "gate+_in+_hook_pre_linear_mean",
               "gate+_in+_hook_pre_linear_max_values"]  # fmt: skip
    path = tmp_path / "in-only.parquet"
    pq.write_table(pa.table({c: [0] for c in columns}), path)
    registered = registry.register_glu_dataset("in-only", str(path))
    assert [m.derived_scalar_type.value for m in registered] == ["mlp_pre_linear"]
    assert parse_column("gate-_in+_hook_pre_linear_max_values") == (
        "gate-_in+", "hook_pre_linear", "max_values"
    )  # fmt: skip
    assert parse_column("gate-_in+_hook_pre_mean") == ("gate-_in+", "hook_pre", "mean")
    assert parse_column("all_hook_post_total") == ("all", "hook_post", "total")
    assert parse_column("gate+_in-_count") == ("gate+_in-", None, "count")
    assert parse_column("layer") is None and parse_column("gate+_in+_mean") is None
