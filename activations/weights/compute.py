"""Every neuron's weight views, computed once per model from its weights alone, in chunks of
neurons: a 7B model's full logit matrix (neurons × vocabulary) is many GB and is never held.

Per neuron: the cosines of its gate, in and out vectors and its IO class (classes.py); what it
writes: its out vector through the final norm's scale and the unembedding, W_U · (γ ⊙ w_out),
reduced to its top and bottom tokens and the distribution's skew and kurtosis (its vocabulary
family); what it reads: its gate and in rows against the input embedding, W_E · w, reduced to
their top and bottom tokens. Values are of the model as registered: where the registry says it
is looked at refactored (--refactor-glu), in and out carry each neuron's sign (classes do not
change with it: both its cosines with the gate flip together).

Gate and in are read as the neuron reads them: through the scale of the norm before the MLP
(γ ⊙ w_gate, γ ⊙ w_in), as TransformerLens's `fold_ln` folds it into them and as the IO classes'
authors compute every cosine and class (sjgerstner/RW_functionalities loads its models so). The
cosines of the raw rows are kept beside them (`raw_cos_*`, and the class they give).

One neuron's views are the same computation on its own rows, padded to PAD rows: a product of so
few rows takes another path through the BLAS library than a chunk's, whose float32 sums differ
in their last bits; from PAD rows on each row's product is the chunk's, bit for bit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from activations.models.adapters import MlpSite, glu_refactor_signs
from activations.weights import classes
from activations.weights.products import mean_row, reduce_product

TOP_K = 10
CHUNK = 384  # neurons per product: [3 × CHUNK, a tile of the vocabulary] float32 at a time
METADATA_KEY = b"weight_views"  # the table's metadata: classes, families, how it was made
LISTS = ("out_top", "out_bottom", "gate_top", "gate_bottom", "in_top", "in_bottom")
FINAL_NORMS = ("norm", "ln_f", "final_layernorm", "final_layer_norm")  # the base model's
# the norm a layer applies to the residual before its MLP (Gemma 2 and 3 name theirs first)
PRE_MLP_NORMS = ("pre_feedforward_layernorm", "post_attention_layernorm", "ln_2")
POST_NORM_LAYERS = ("Olmo2DecoderLayer", "Olmo3DecoderLayer")  # their MLP reads x unnormalized
UNIT_OFFSET_NORMS = ("GemmaRMSNorm", "Gemma2RMSNorm", "Gemma3RMSNorm")  # scale by 1 + weight
PAD = 16
RAW = ("raw_cos_gate_in", "raw_cos_gate_out", "raw_cos_in_out", "raw_io_class")


def norm_scale(norm: nn.Module | None) -> torch.Tensor | None:
    """The learned scale a norm applies (None: none, as OLMo's non-parametric layer norm)."""
    weight = getattr(norm, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return None
    offset = 1.0 if type(norm).__name__ in UNIT_OFFSET_NORMS else 0.0
    return weight.detach().float() + offset


def final_norm_scale(model: nn.Module) -> torch.Tensor | None:
    """The scale the final norm applies before the unembedding (None: no learned scale)."""
    base = getattr(model, "base_model", model)
    return norm_scale(next((getattr(base, n) for n in FINAL_NORMS if hasattr(base, n)), None))


def pre_mlp_norm_scales(model: nn.Module, sites: list[MlpSite]) -> list[torch.Tensor | None]:
    """Per site, the scale of the norm its layer applies before the MLP (None: none)."""
    parents = {
        id(child): module for module in model.modules() for child in module.children()
    }  # fmt: skip
    scales: list[torch.Tensor | None] = []
    for site in sites:
        layer = parents.get(id(site.mlp))
        if layer is None or type(layer).__name__ in POST_NORM_LAYERS:
            scales.append(None)
            continue
        norm = next((getattr(layer, n) for n in PRE_MLP_NORMS if hasattr(layer, n)), None)
        scales.append(norm_scale(norm))
    return scales


@dataclass
class Vocabulary:
    """The matrices every neuron is read against, prepared once per model."""

    unembed: torch.Tensor  # [V, d] float32
    embed: torch.Tensor  # the same object where the model ties them
    unembed_mean: torch.Tensor
    scale: torch.Tensor | None  # the final norm's
    norm_scales: list[torch.Tensor | None]  # each site's pre-MLP norm's

    @classmethod
    def of(cls, model: nn.Module, sites: list[MlpSite]) -> Vocabulary:
        unembed = model.get_output_embeddings().weight.detach().float()
        embed = model.get_input_embeddings().weight.detach().float()
        # tied (one matrix in and out): each chunk is then one product, [written; gate; in] · W_U^T
        if embed.data_ptr() == unembed.data_ptr() or torch.equal(embed, unembed):
            embed = unembed
        scales = pre_mlp_norm_scales(model, sites)
        return cls(unembed, embed, mean_row(unembed), final_norm_scale(model), scales)


@dataclass
class LayerWeights:
    """A layer's vectors as the views read them, [N, d] float32 each."""

    layer: int
    out: torch.Tensor
    written: torch.Tensor  # out through the final norm's scale
    in_: torch.Tensor  # folded: through the pre-MLP norm's scale
    gate: torch.Tensor | None
    raw_in: torch.Tensor
    raw_gate: torch.Tensor | None

    @classmethod
    def of(cls, site: MlpSite, vocabulary: Vocabulary, refactored: bool) -> LayerWeights:
        out = site.out_weights().detach().float()
        in_ = site.in_weights().detach().float()
        gate = site.gate_in_weights()[0].detach().float() if site.is_glu else None
        if refactored and gate is not None:
            sign = glu_refactor_signs(site).unsqueeze(1)
            in_, out = in_ * sign, out * sign
        fold = vocabulary.norm_scales[site.layer]
        scale = vocabulary.scale
        return cls(
            layer=site.layer, out=out, written=out * scale if scale is not None else out,
            in_=in_ * fold if fold is not None else in_,
            gate=gate * fold if gate is not None and fold is not None else gate,
            raw_in=in_, raw_gate=gate,
        )  # fmt: skip


def weight_views(
    model: nn.Module,
    sites: list[MlpSite],
    refactored: bool = False,
    top_k: int = TOP_K,
    chunk: int = CHUNK,
    on_layer: Callable[[int], None] | None = None,
    vocabulary: Vocabulary | None = None,
) -> pa.Table:
    """One row per neuron, layer by layer (see the module's docstring)."""
    vocabulary = vocabulary or Vocabulary.of(model, sites)
    parts: list[pa.Table] = []
    began = time.perf_counter()
    with torch.inference_mode():
        for site in sites:
            weights = LayerWeights.of(site, vocabulary, refactored)
            n = weights.out.shape[0]
            chunks = [
                views_of(weights, vocabulary, torch.arange(s, min(s + chunk, n)), top_k)
                for s in range(0, n, chunk)
            ]
            parts.append(pa.concat_tables(chunks))
            if on_layer is not None:
                on_layer(site.layer)
    table = pa.concat_tables(parts)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(table_metadata(
        sites[0].is_glu, vocabulary, refactored, top_k, round(time.perf_counter() - began, 1)
    ))})  # fmt: skip


def table_metadata(
    is_glu: bool, vocabulary: Vocabulary, refactored: bool, top_k: int, seconds: float
) -> dict:
    names = list(classes.CLASS_NAMES if is_glu else classes.PLAIN_CLASSES.values())
    return {
        "classes": names, "families": list(classes.FAMILIES), "top_k": top_k,
        "refactored": refactored, "seconds": seconds,
        "vocabulary": int(vocabulary.unembed.shape[0]),
        "final_norm_scale": vocabulary.scale is not None,
        "folded": any(s is not None for s in vocabulary.norm_scales),
    }  # fmt: skip


def neuron_views(
    site: MlpSite, vocabulary: Vocabulary, neuron: int, refactored: bool, top_k: int = TOP_K
) -> pa.Table:
    """One neuron's row of the table, computed from its own vectors alone (milliseconds)."""
    with torch.inference_mode():
        weights = LayerWeights.of(site, vocabulary, refactored)
        return views_of(weights, vocabulary, torch.tensor([neuron]), top_k)


def views_of(
    weights: LayerWeights, vocabulary: Vocabulary, neurons: torch.Tensor, top_k: int
) -> pa.Table:
    """The rows of these neurons (indices into the layer, ascending)."""
    n = len(neurons)
    pick = lambda m: None if m is None else m.index_select(0, neurons)  # noqa: E731
    out, in_, gate = pick(weights.out), pick(weights.in_), pick(weights.gate)
    raw_in, raw_gate = pick(weights.raw_in), pick(weights.raw_gate)
    columns: dict[str, object] = {
        "layer": np.full(n, weights.layer, np.int16), "neuron": neurons.numpy().astype(np.int32),
    }  # fmt: skip
    for prefix, g, i in (("", gate, in_), ("raw_", raw_gate, raw_in)):
        gate_in = None if g is None else classes.cosines(g, i)
        gate_out = None if g is None else classes.cosines(g, out)
        in_out = classes.cosines(i, out)
        no_gate = np.full(n, np.nan)  # a plain MLP has no gate
        columns[f"{prefix}cos_gate_in"] = no_gate if gate_in is None else _np(gate_in)
        columns[f"{prefix}cos_gate_out"] = no_gate if gate_out is None else _np(gate_out)
        columns[f"{prefix}cos_in_out"] = _np(in_out)
        columns[f"{prefix}io_class"] = _np(classes.io_class_index(gate_in, gate_out, in_out))
    read = [r for r in (gate, in_) if r is not None]
    names = ["out", "gate", "in"] if gate is not None else ["out", "in"]
    written = pick(weights.written)
    if vocabulary.embed is vocabulary.unembed:
        rows = _padded(torch.cat([written, *read]))
        reduced = [reduce_product(rows, vocabulary.unembed, top_k, n, vocabulary.unembed_mean)]
    else:
        reduced = [
            reduce_product(_padded(written), vocabulary.unembed, top_k, n, vocabulary.unembed_mean),
            reduce_product(_padded(torch.cat(read)), vocabulary.embed, top_k),
        ]  # fmt: skip
    counts = [written.shape[0], len(read) * n] if len(reduced) == 2 else [(1 + len(read)) * n]
    lists_of = {
        kind: torch.cat([getattr(r, kind)[:c] for r, c in zip(reduced, counts, strict=True)])
        for kind in ("top_ids", "top_values", "bottom_ids", "bottom_values")
    }
    columns["skew"], columns["kurtosis"] = _np(reduced[0].skew), _np(reduced[0].kurtosis)
    columns["family"] = _np(classes.family_index(reduced[0].skew, reduced[0].kurtosis))
    for i, name in enumerate(names):
        for kind, found in lists_of.items():
            found = found[i * n : (i + 1) * n]
            values = (found.to(torch.int32) if "ids" in kind else found).numpy()
            flat = pa.array(values.reshape(-1))
            columns[f"{name}_{kind}"] = pa.FixedSizeListArray.from_arrays(flat, top_k)
    return pa.table(columns)


def _padded(rows: torch.Tensor) -> torch.Tensor:
    """At least PAD rows (zeros after them): see the module's docstring."""
    if rows.shape[0] >= PAD:
        return rows
    return torch.cat([rows, rows.new_zeros(PAD - rows.shape[0], rows.shape[1])])


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.cpu().numpy()
