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

from activations.debugger.errors import DebuggerInputError
from activations.debugger.parts import ModelParts
from activations.debugger.passes import PassResult
from activations.debugger.ranking import extremes
from activations.models.capture import site_values
from registry.debugger_vocabulary import NODE_TYPE, NodeType, TdbScalar
from registry.vocabulary import DST_TO_HOOK, GATE_HOOK, HOOK_POST, IN_HOOK, SWISH


class Weights:
    """The weights the scalars read, on the CPU in float32, stacked over layers, once per model."""

    def __init__(self, parts: ModelParts, signs: list[torch.Tensor | None]) -> None:
        self.parts = parts
        self.signs = signs
        self.out = torch.stack([s.out_weights().detach().float().cpu() for s in parts.sites])
        """[L, N, D]: each neuron's output direction."""
        self.out_norms = self.out.norm(dim=-1)  # [L, N]
        self.heads = torch.stack(
            [parts.head_outputs(i).detach().float().cpu() for i in range(parts.n_layers)]
        )  # [L, H, head_dim, D]
        ones = torch.ones(self.out.shape[1])
        self.sign_stack = (
            None
            if all(s is None for s in signs)
            else torch.stack([ones if s is None else s for s in signs])[:, None, :]
        )  # [L, 1, N]

    @cached_property
    def unembedding(self) -> torch.Tensor:
        """W_U times the final norm's gain, [V, D] (TDB's unembedding with ln gain)."""
        gain = self.parts.final_gain().detach().float().cpu()
        return self.parts.unembedding.detach().float().cpu() * gain

    @cached_property
    def embedding(self) -> torch.Tensor:
        return self.parts.embedding.detach().float().cpu()

    @cached_property
    def gates(self) -> torch.Tensor | None:
        """[L, N, D]: each GLU neuron's gate row (None for plain MLPs)."""
        if not self.parts.sites[0].is_glu:
            return None
        rows = [s.gate_in_weights()[0].detach().float().cpu() for s in self.parts.sites]
        return torch.stack(rows)

    @cached_property
    def head_factors(self) -> torch.Tensor:
        """Rᵀ of W_O[h]ᵀ = Q·R per layer and head, [L, H, head_dim, head_dim]: Q's columns are
        orthonormal, so a head's write v·W_O[h] = v·Rᵀ·Qᵀ has the norm of v·Rᵀ, a product
        with 64 columns instead of the model's width."""
        r = torch.linalg.qr(self.heads.double().transpose(-1, -2), mode="r").R
        return r.transpose(-1, -2).float()

    def gate_rows(self, layer: int) -> torch.Tensor | None:
        return None if self.gates is None else self.gates[layer]


class Scalars:
    """One pass's derived scalars, each computed on first use for every layer at once."""

    def __init__(self, result: PassResult, weights: Weights) -> None:
        self.result = result
        self.weights = weights
        self._cache: dict[TdbScalar, torch.Tensor] = {}
        self._sums: dict[TdbScalar, torch.Tensor] = {}
        self._ranked: dict[tuple, tuple[int, torch.Tensor, torch.Tensor]] = {}

    @property
    def n_tokens(self) -> int:
        return len(self.result.ids)

    def layers(self, scalar: TdbScalar) -> list[int | None]:
        """The layer indices a scalar has (None: one tensor for the whole model)."""
        if NODE_TYPE[scalar] in (NodeType.LAYER, NodeType.VOCAB_TOKEN):
            return [None]
        return list(range(self.weights.parts.n_layers))

    def stacked(self, scalar: TdbScalar) -> torch.Tensor:
        """[L, ...] over layers (or [1, ...] where the scalar has none)."""
        if scalar not in self._cache:
            self._cache[scalar] = self._compute(scalar)
        return self._cache[scalar]

    def get(self, scalar: TdbScalar, layer: int | None) -> torch.Tensor:
        return self.stacked(scalar)[0 if layer is None else layer]

    def ranked(
        self, scalar: TdbScalar, k: int, largest: bool, token: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k largest (or smallest) values of the stacked scalar (at one token, counted from
        the start, or all) and their flat indices in it (ranking.extremes' order). A request's
        node table and token display rank the same scalars with different k: the longer
        ranking is kept and a shorter one is its prefix."""
        key = (scalar, largest, token)
        kept = self._ranked.get(key)
        if kept is None or kept[0] < k:
            stacked = self.stacked(scalar)
            if token is not None:
                stacked = stacked[:, token : token + 1]
            kept = (k, *extremes(stacked, k, largest))
            self._ranked[key] = kept
        return kept[1][:k], kept[2][:k]

    def _grad(self, name: str) -> torch.Tensor:
        grad = self.result.grads.get(name)
        return torch.zeros_like(getattr(self.result, name)) if grad is None else grad

    def _final_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens where the final residual's gradient is not zero (a loss at the last token
        has one) and the gradient there: direct effects are zero elsewhere."""
        grad = self._grad("final_residual")
        rows = torch.nonzero(grad.abs().sum(-1) > 0).flatten()
        return rows, grad[rows]

    def _compute(self, scalar: TdbScalar) -> torch.Tensor:
        r, w = self.result, self.weights
        if scalar in GLU_SCALARS:
            hook = DST_TO_HOOK[next(d for d in DST_TO_HOOK if d.value == scalar.value)]
            if r.gate[0] is None:
                raise DebuggerInputError(
                    f"{scalar.value} is a GLU's: this model's MLPs have no gate"
                )
            gate, in_ = torch.stack(r.gate), torch.stack(r.in_)
            captured = {GATE_HOOK: gate, IN_HOOK: in_, SWISH: None, HOOK_POST: r.post}
            acts = [s.act for s in w.parts.sites]
            sign = w.sign_stack
            return site_values(captured, lambda gate: _per_layer(acts, gate), sign)[hook]
        if scalar == TdbScalar.MLP_POST_ACT:
            return r.post if w.sign_stack is None else r.post * w.sign_stack
        if scalar == TdbScalar.MLP_WRITE_NORM:
            return r.post.abs().mul_(w.out_norms[:, None, :])
        if scalar == TdbScalar.MLP_ACT_TIMES_GRAD:
            return r.post * self._grad("post")
        if scalar == TdbScalar.MLP_WRITE_TO_FINAL_RESIDUAL_GRAD:
            rows, grad = self._final_rows()
            direct = torch.zeros_like(r.post)
            direct[:, rows] = r.post[:, rows] * torch.einsum("td,lnd->ltn", grad, w.out)
            return direct
        if scalar == TdbScalar.ATTN_QK_PROBS:
            return _heads_last(r.probs)
        if scalar == TdbScalar.UNFLATTENED_ATTN_ACT_TIMES_GRAD:
            return _heads_last(r.probs * self._grad("probs"))
        if scalar == TdbScalar.UNFLATTENED_ATTN_WRITE_NORM:
            norms = self.head_write_norms[:, :, None, :]  # [L, H, 1, S]
            return _heads_last(r.probs * norms)
        if scalar == TdbScalar.UNFLATTENED_ATTN_WRITE_TO_FINAL_RESIDUAL_GRAD:
            rows, grad = self._final_rows()
            # v(s)·(W_O[h]·g(t)): each head's output projection reads the gradient once
            read = torch.einsum("lhde,te->lhdt", w.heads, grad)  # [L, H, d, R]
            direct = torch.zeros_like(r.probs)
            direct[:, :, rows] = r.probs[:, :, rows] * (self._head_values() @ read).transpose(2, 3)
            return _heads_last(direct)
        emb = r.embedding
        if scalar == TdbScalar.RESID_POST_EMBEDDING_NORM:
            value = emb.norm(dim=-1, keepdim=True)
        elif scalar == TdbScalar.TOKEN_ATTRIBUTION:
            value = (emb * self._grad("embedding")).sum(-1, keepdim=True)
        elif scalar == TdbScalar.RESID_POST_EMBEDDING_PROJ_TO_FINAL_RESIDUAL_GRAD:
            value = (emb * self._grad("final_residual")).sum(-1, keepdim=True)
        elif scalar == TdbScalar.ALWAYS_ONE:
            value = torch.ones(self.n_tokens, 1)
        elif scalar == TdbScalar.LOGITS:
            value = r.logits
        else:
            raise DebuggerInputError(
                f"derived scalar {scalar.value!r} is not one of a pass's nodes; valid: "
                + ", ".join(s.value for s in PER_PASS)
            )
        return value[None]

    def _head_values(self) -> torch.Tensor:
        """Each query head's value vectors, [L, H, S, d] (grouped-query heads read value head
        h // groups)."""
        values = self.result.values  # [L, KV, S, d]
        groups = self.weights.parts.n_heads // values.shape[1]
        return values.repeat_interleave(groups, dim=1)

    @cached_property
    def head_write_norms(self) -> torch.Tensor:
        """|v(s)·W_O[h]| for each layer, head and attended-to token, [L, H, S]: a head's write
        from token t to s is p(t, s) times that vector (weights.head_factors)."""
        return (self._head_values() @ self.weights.head_factors).norm(dim=-1)

    def head_write(self, layer: int, head: int, source: int) -> torch.Tensor:
        """v(s)·W_O[h], [D]."""
        groups = self.weights.parts.n_heads // self.result.values.shape[1]
        return self.result.values[layer, head // groups, source] @ self.weights.heads[layer, head]

    def write_vector(self, node_type: NodeType, layer: int | None, index: tuple) -> torch.Tensor:
        """What a node adds to the residual stream, [D]."""
        if node_type == NodeType.MLP_NEURON:
            token, neuron = index
            return self.result.post[layer, token, neuron] * self.weights.out[layer, neuron]
        if node_type == NodeType.ATTENTION_HEAD:
            token, source, head = index
            prob = self.result.probs[layer, head, token, source]
            return prob * self.head_write(layer, head, source)
        if node_type == NodeType.LAYER:
            return self.result.embedding[index[0]]
        raise ValueError(f"a {node_type.value} node writes nothing to the residual stream")

    def intermediate_sum(self, scalar: TdbScalar) -> torch.Tensor:
        """Summed over layers and nodes, keeping tokens (and attended-to tokens): TDB's
        intermediate sums for the token display."""
        if scalar not in self._sums:
            stacked = self.stacked(scalar)
            dims = (0, -1) if stacked.ndim > 2 else 0  # layers, then nodes (or heads)
            self._sums[scalar] = stacked.sum(dims)
        return self._sums[scalar]


GLU_SCALARS = (TdbScalar.MLP_PRE_ACT, TdbScalar.MLP_PRE_LINEAR, TdbScalar.MLP_SWISH)
PER_PASS = [s for s in TdbScalar if s != TdbScalar.VOCAB_TOKEN_WRITE_TO_INPUT_DIRECTION]


def _heads_last(per_head: torch.Tensor) -> torch.Tensor:
    """[L, H, T, S] as TDB's [L, T, S, H], laid out so (rankings read it flat)."""
    return per_head.permute(0, 2, 3, 1).contiguous()


def _per_layer(acts, gate: torch.Tensor) -> torch.Tensor:
    """Each layer's own activation function on its gate values, [L, T, N]."""
    return torch.stack([act(gate[i]) for i, act in enumerate(acts)])
