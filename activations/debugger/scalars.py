"""Derived scalars of one pass, as transformer-debugger defines them (its derived_scalars/):

- activations: an MLP neuron's act(gate)·in (and the GLU's gate, in and act(gate)), a head's
  post-softmax probability per token pair, 1.0 for the embedding;
- act × grad: the activation times the gradient of the explained scalar with respect to it (for
  the embedding, summed over the residual stream: token attribution);
- write norm: the norm of what the node adds to the residual stream (a neuron's act·W_out[i], a
  head's p(t,s)·v(s)·W_O[h] per token pair, the embedding itself);
- direct effect ("direction write"): that write · the gradient at the final residual stream,
  the final norm's scale held fixed (TDB detaches it), i.e. its effect through the unembedding
  on the logit difference alone.

Tensors are TDB's per-layer shapes: [T, N] for neurons, [T, S, H] for heads, [T, 1] for the
embedding, [T, V] for logits.
"""

from __future__ import annotations

from functools import cached_property

import torch

from activations.debugger.parts import ModelParts
from activations.debugger.passes import PassResult
from activations.models.capture import site_values
from registry.debugger_vocabulary import NODE_TYPE, NodeType, TdbScalar
from registry.vocabulary import DST_TO_HOOK, GATE_HOOK, HOOK_POST, IN_HOOK, SWISH


class Weights:
    """The weights the scalars read, on the CPU in float32, once per model."""

    def __init__(self, parts: ModelParts, signs: list[torch.Tensor | None]) -> None:
        self.parts = parts
        self.signs = signs
        self.out = [s.out_weights().detach().float().cpu() for s in parts.sites]  # [N, D]
        self.out_norms = [w.norm(dim=1) for w in self.out]
        self.heads = [parts.head_outputs(i).detach().float().cpu() for i in range(parts.n_layers)]

    @cached_property
    def unembedding(self) -> torch.Tensor:
        """W_U times the final norm's gain, [V, D] (TDB's unembedding with ln gain)."""
        gain = self.parts.final_gain().detach().float().cpu()
        return self.parts.unembedding.detach().float().cpu() * gain

    @cached_property
    def embedding(self) -> torch.Tensor:
        return self.parts.embedding.detach().float().cpu()

    def gate_rows(self, layer: int) -> torch.Tensor | None:
        site = self.parts.sites[layer]
        if not site.is_glu:
            return None
        return site.gate_in_weights()[0].detach().float().cpu()


class Scalars:
    """One pass's derived scalars, computed on first use."""

    def __init__(self, result: PassResult, weights: Weights) -> None:
        self.result = result
        self.weights = weights
        self._cache: dict[TdbScalar, list[torch.Tensor]] = {}
        self._head_writes: dict[int, torch.Tensor] = {}

    @property
    def n_tokens(self) -> int:
        return len(self.result.ids)

    def layers(self, scalar: TdbScalar) -> list[int | None]:
        """The layer indices a scalar has (None: one tensor for the whole model)."""
        if NODE_TYPE[scalar] in (NodeType.LAYER, NodeType.VOCAB_TOKEN):
            return [None]
        return list(range(self.weights.parts.n_layers))

    def get(self, scalar: TdbScalar, layer: int | None) -> torch.Tensor:
        if scalar not in self._cache:
            self._cache[scalar] = self._compute(scalar)
        return self._cache[scalar][0 if layer is None else layer]

    def _grad(self, name: str, layer: int | None = None) -> torch.Tensor:
        grads = self.result.grads.get(name)
        if grads is None:
            like = getattr(self.result, name)
            like = like if layer is None else like[layer]
            return torch.zeros_like(like)
        return grads if layer is None else grads[layer]

    def _sign(self, layer: int) -> torch.Tensor | float:
        sign = self.weights.signs[layer]
        return 1.0 if sign is None else sign

    def _glu(self, layer: int) -> dict[str, torch.Tensor]:
        r = self.result
        captured = {GATE_HOOK: r.gate[layer], IN_HOOK: r.in_[layer], SWISH: None}
        captured[HOOK_POST] = r.post[layer]
        site = self.weights.parts.sites[layer]
        return site_values(captured, site.act, self.weights.signs[layer])

    def _compute(self, scalar: TdbScalar) -> list[torch.Tensor]:
        r, w = self.result, self.weights
        n = w.parts.n_layers
        final_grad = self._grad("final_residual")  # [T, D]
        if scalar in (TdbScalar.MLP_PRE_ACT, TdbScalar.MLP_PRE_LINEAR, TdbScalar.MLP_SWISH):
            hook = DST_TO_HOOK[next(d for d in DST_TO_HOOK if d.value == scalar.value)]
            return [self._glu(i)[hook] for i in range(n)]
        if scalar == TdbScalar.MLP_POST_ACT:
            return [r.post[i] * self._sign(i) for i in range(n)]
        if scalar == TdbScalar.MLP_WRITE_NORM:
            return [r.post[i].abs() * w.out_norms[i] for i in range(n)]
        if scalar == TdbScalar.MLP_ACT_TIMES_GRAD:
            return [r.post[i] * self._grad("post", i) for i in range(n)]
        if scalar == TdbScalar.MLP_WRITE_TO_FINAL_RESIDUAL_GRAD:
            return [r.post[i] * (final_grad @ w.out[i].T) for i in range(n)]
        if scalar == TdbScalar.ATTN_QK_PROBS:
            return [p.permute(1, 2, 0) for p in r.probs]
        if scalar == TdbScalar.UNFLATTENED_ATTN_ACT_TIMES_GRAD:
            return [(r.probs[i] * self._grad("probs", i)).permute(1, 2, 0) for i in range(n)]
        if scalar == TdbScalar.UNFLATTENED_ATTN_WRITE_NORM:
            return [
                (r.probs[i] * self.head_writes(i).norm(dim=-1)[:, None, :]).permute(1, 2, 0)
                for i in range(n)
            ]
        if scalar == TdbScalar.UNFLATTENED_ATTN_WRITE_TO_FINAL_RESIDUAL_GRAD:
            out = []
            for i in range(n):
                direct = torch.einsum("hsd,td->hts", self.head_writes(i), final_grad)
                out.append((r.probs[i] * direct).permute(1, 2, 0))
            return out
        emb = r.embedding
        if scalar == TdbScalar.RESID_POST_EMBEDDING_NORM:
            return [emb.norm(dim=-1, keepdim=True)]
        if scalar == TdbScalar.TOKEN_ATTRIBUTION:
            return [(emb * self._grad("embedding")).sum(-1, keepdim=True)]
        if scalar == TdbScalar.RESID_POST_EMBEDDING_PROJ_TO_FINAL_RESIDUAL_GRAD:
            return [(emb * final_grad).sum(-1, keepdim=True)]
        if scalar == TdbScalar.ALWAYS_ONE:
            return [torch.ones(self.n_tokens, 1)]
        if scalar == TdbScalar.LOGITS:
            return [r.logits]
        raise ValueError(f"derived scalar {scalar.value!r} is not computed per pass")

    def head_writes(self, layer: int) -> torch.Tensor:
        """v(s)·W_O[h] for each head and attended-to token, [H, S, D]: a head's write from token
        t to s is p(t, s) times it (grouped-query heads read value head h // groups)."""
        if layer not in self._head_writes:
            values = self.result.values[layer]  # [KV, S, d]
            groups = self.weights.parts.n_heads // values.shape[0]
            values = values.repeat_interleave(groups, dim=0)
            writes = torch.einsum("hsd,hde->hse", values, self.weights.heads[layer])
            self._head_writes[layer] = writes
        return self._head_writes[layer]

    def write_vector(self, node_type: NodeType, layer: int | None, index: tuple) -> torch.Tensor:
        """What a node adds to the residual stream, [D]."""
        if node_type == NodeType.MLP_NEURON:
            token, neuron = index
            return self.result.post[layer][token, neuron] * self.weights.out[layer][neuron]
        if node_type == NodeType.ATTENTION_HEAD:
            token, source, head = index
            prob = self.result.probs[layer][head, token, source]
            return prob * self.head_writes(layer)[head, source]
        if node_type == NodeType.LAYER:
            return self.result.embedding[index[0]]
        raise ValueError(f"a {node_type.value} node writes nothing to the residual stream")

    def intermediate_sum(self, scalar: TdbScalar) -> torch.Tensor:
        """Summed over layers and nodes, keeping tokens (and attended-to tokens): TDB's
        intermediate sums for the token display."""
        total = None
        for layer in self.layers(scalar):
            value = self.get(scalar, layer)
            value = value.sum(-1) if value.ndim > 1 else value
            total = value if total is None else total + value
        return total
