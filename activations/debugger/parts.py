"""Where a model keeps what the debugger reads: its decoder layers, each layer's attention (output
projection, heads, key/value heads), MLP sites (adapters.py), the final norm and the unembedding.
Found by module names the Llama family shares (Llama, OLMo, OLMo2, Qwen2, Mistral, Gemma, Phi-3);
a model without them gets an error naming what is missing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from activations.models.adapters import MlpSite


class DebuggerUnsupportedError(ValueError):
    """The model lacks a part the debugger reads (said with what it looked for)."""


@dataclass
class ModelParts:
    model: nn.Module
    layers: list[nn.Module]
    attentions: list[nn.Module]
    sites: list[MlpSite]
    final_norm: nn.Module
    unembedding: torch.Tensor  # [V, D]
    embedding: torch.Tensor  # [V, D]
    n_heads: int
    n_kv_heads: int
    head_dim: int

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def head_outputs(self, layer: int) -> torch.Tensor:
        """The output projection as [H, head_dim, D]: what each head's weighted value writes."""
        weight = self.attentions[layer].o_proj.weight  # [D, H * head_dim]
        return weight.T.reshape(self.n_heads, self.head_dim, -1)

    def final_gain(self) -> torch.Tensor:
        """The final norm's elementwise gain (γ; Gemma's 1 + w; ones where it has none)."""
        return norm_gain(self.final_norm, self.unembedding.shape[1])


def find_parts(model: nn.Module, sites: list[MlpSite]) -> ModelParts:
    base = getattr(model, "base_model", model)
    layers = getattr(base, "layers", None)
    norm = getattr(base, "norm", None)
    attentions = sorted(
        (m for m in model.modules() if hasattr(m, "o_proj") and hasattr(m, "layer_idx")),
        key=lambda m: m.layer_idx,
    )
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    missing = [
        what
        for what, found in (
            ("decoder layers (`layers`)", layers is not None),
            ("a final norm (`norm`)", norm is not None),
            ("an output embedding", out is not None),
            ("attention modules with `o_proj` and `layer_idx`", len(attentions) == len(sites)),
        )
        if not found
    ]
    if missing:
        raise DebuggerUnsupportedError(
            f"{type(model).__name__} is not one the debugger reads: it has no "
            + ", ".join(missing)
            + " (the Llama family's layout: Llama, OLMo, Qwen2, Mistral, Gemma, Phi-3)"
        )
    first = attentions[0]
    head_dim = int(first.head_dim)
    n_heads = first.o_proj.weight.shape[1] // head_dim
    n_kv = n_heads // int(getattr(first, "num_key_value_groups", 1))
    return ModelParts(
        model=model,
        layers=list(layers),
        attentions=attentions,
        sites=sites,
        final_norm=norm,
        unembedding=out.weight,
        embedding=model.get_input_embeddings().weight,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
    )


def _is_centered(norm: nn.Module) -> bool:
    name = type(norm).__name__
    return "LayerNorm" in name and "RMS" not in name


def _epsilon(norm: nn.Module) -> float:
    for attribute in ("variance_epsilon", "eps", "epsilon"):
        value = getattr(norm, attribute, None)
        if isinstance(value, int | float):
            return float(value)
    return 1e-5 if _is_centered(norm) else 1e-6  # torch's LayerNorm default; RMSNorm's usual


def norm_scale(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The per-token scale s(x) the norm multiplies by (1/rms, or 1/std), [..., 1]."""
    x = x.float()
    if _is_centered(norm):
        x = x - x.mean(dim=-1, keepdim=True)
    return torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + _epsilon(norm))


def norm_gain(norm: nn.Module, width: int) -> torch.Tensor:
    """The gain, read from the module by running it: on ±1 alternating (mean 0, rms 1) a norm
    returns gain · x · (1 + eps)^-1/2 plus its bias, which norm(0) is."""
    weight = next(norm.parameters(), None)
    device = weight.device if weight is not None else "cpu"
    x = torch.ones(1, width, device=device)
    x[:, 1::2] = -1.0
    with torch.no_grad():
        out = norm(x).float() - norm(torch.zeros_like(x)).float()
    return (out / x * (1.0 + _epsilon(norm)) ** 0.5)[0]


def detach_scale(norm: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The norm's output with its scale held fixed for gradients (TDB detaches the final layer
    norm's scale): (y − bias) · s₀/s(x) + bias equals y and has the gradient of gain·c(x)·s₀."""
    bias = getattr(norm, "bias", None)
    bias = bias if isinstance(bias, torch.Tensor) else None
    scale = norm_scale(norm, x)
    ratio = (scale.detach() / scale).to(y.dtype)
    if bias is None:
        return y * ratio
    return (y - bias) * ratio + bias
