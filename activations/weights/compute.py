"""Every neuron's weight views, computed once per model from its weights alone, in chunks of
neurons: a 7B model's full logit matrix (neurons × vocabulary) is many GB and is never held.

Per neuron: the cosines of its gate, in and out vectors and its IO class (classes.py); what it
writes: its out vector through the final norm's scale and the unembedding, W_U · (γ ⊙ w_out),
reduced to its top and bottom tokens and the distribution's skew and kurtosis (its vocabulary
family); what it reads: its gate and in rows against the input embedding, W_E · w, reduced to
their top and bottom tokens. Values are of the model as registered: where the registry says it
is looked at refactored (--refactor-glu), in and out carry each neuron's sign (classes do not
change with it: both its cosines with the gate flip together).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

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
UNIT_OFFSET_NORMS = ("GemmaRMSNorm", "Gemma2RMSNorm", "Gemma3RMSNorm")  # scale by 1 + weight


def final_norm_scale(model: nn.Module) -> torch.Tensor | None:
    """The scale the final norm applies before the unembedding (None: no learned scale)."""
    base = getattr(model, "base_model", model)
    norm = next((getattr(base, n) for n in FINAL_NORMS if hasattr(base, n)), None)
    weight = getattr(norm, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return None  # OLMo's non-parametric layer norm
    offset = 1.0 if type(norm).__name__ in UNIT_OFFSET_NORMS else 0.0
    return weight.detach().float() + offset


def weight_views(
    model: nn.Module,
    sites: list[MlpSite],
    refactored: bool = False,
    top_k: int = TOP_K,
    chunk: int = CHUNK,
    on_layer: Callable[[int], None] | None = None,
) -> pa.Table:
    """One row per neuron, layer by layer (see the module's docstring)."""
    unembed = model.get_output_embeddings().weight.detach().float()  # [V, d]
    embed = model.get_input_embeddings().weight.detach().float()
    scale = final_norm_scale(model)
    names = list(classes.CLASS_NAMES if sites[0].is_glu else classes.PLAIN_CLASSES.values())
    parts: list[pa.Table] = []
    began = time.perf_counter()
    # tied (one matrix in and out): each chunk is then one product, [written; gate; in] · W_U^T
    if embed.data_ptr() == unembed.data_ptr() or torch.equal(embed, unembed):
        embed = unembed
    with torch.inference_mode():
        unembed_mean = mean_row(unembed)
        for site in sites:
            parts.append(
                _layer(site, unembed, unembed_mean, embed, scale, refactored, top_k, chunk)
            )
            if on_layer is not None:
                on_layer(site.layer)
    table = pa.concat_tables(parts)
    metadata = {
        "classes": names, "families": list(classes.FAMILIES), "top_k": top_k,
        "refactored": refactored, "seconds": round(time.perf_counter() - began, 1),
        "vocabulary": int(unembed.shape[0]), "final_norm_scale": scale is not None,
    }  # fmt: skip
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata)})


def _layer(site, unembed, unembed_mean, embed, scale, refactored, top_k, chunk) -> pa.Table:
    out = site.out_weights().detach().float()  # [N, d]
    in_ = site.in_weights().detach().float()
    gate = site.gate_in_weights()[0].detach().float() if site.is_glu else None
    if refactored and gate is not None:
        sign = glu_refactor_signs(site).unsqueeze(1)
        in_, out = in_ * sign, out * sign
    n = out.shape[0]
    gate_in = None if gate is None else classes.cosines(gate, in_)
    gate_out = None if gate is None else classes.cosines(gate, out)
    in_out = classes.cosines(in_, out)
    no_gate = np.full(n, np.nan)  # a plain MLP has no gate
    columns: dict[str, object] = {
        "layer": np.full(n, site.layer, np.int16), "neuron": np.arange(n, dtype=np.int32),
        "cos_gate_in": no_gate if gate_in is None else _np(gate_in),
        "cos_gate_out": no_gate if gate_out is None else _np(gate_out),
        "cos_in_out": _np(in_out),
        "io_class": _np(classes.io_class_index(gate_in, gate_out, in_out)),
    }  # fmt: skip
    lists: dict[str, list[torch.Tensor]] = {
        f"{name}_{part}": [] for name in LISTS for part in ("ids", "values")
    }
    skews, kurtoses = [], []
    written = out * scale if scale is not None else out
    read = [r for r in (gate, in_) if r is not None]
    names = ["out", "gate", "in"] if gate is not None else ["out", "in"]
    for start in range(0, n, chunk):
        part = slice(start, min(start + chunk, n))
        width = part.stop - part.start
        if embed is unembed:
            rows = torch.cat([written[part], *(r[part] for r in read)])
            reduced = [reduce_product(rows, unembed, top_k, width, unembed_mean)]
        else:
            reduced = [
                reduce_product(written[part], unembed, top_k, width, unembed_mean),
                reduce_product(torch.cat([r[part] for r in read]), embed, top_k),
            ]
        lists_of = {
            kind: torch.cat([getattr(r, kind) for r in reduced])
            for kind in ("top_ids", "top_values", "bottom_ids", "bottom_values")
        }
        for i, name in enumerate(names):
            rows_of = slice(i * width, (i + 1) * width)
            for kind, found in lists_of.items():
                found = found[rows_of]
                lists[f"{name}_{kind}"].append(found.to(torch.int32) if "ids" in kind else found)
        skews.append(reduced[0].skew)
        kurtoses.append(reduced[0].kurtosis)
    skew, kurtosis = torch.cat(skews), torch.cat(kurtoses)
    columns["skew"], columns["kurtosis"] = _np(skew), _np(kurtosis)
    columns["family"] = _np(classes.family_index(skew, kurtosis))
    for name, found in lists.items():
        if found:
            values = torch.cat(found).numpy()
            flat = pa.array(values.reshape(-1))
            columns[name] = pa.FixedSizeListArray.from_arrays(flat, top_k)
    return pa.table(columns)


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.cpu().numpy()
