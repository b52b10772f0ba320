"""One debugger pass: a forward pass of the model on one prompt variant with hooks that read (and,
for ablations, set) every layer's MLP neurons and attention probabilities, then one backward pass
of the scalar being explained (a logit difference at the last token, or a traced node) to all of
them at once (torch.autograd.grad: gradients of activations only, never of weights).

Nothing outlives the pass: hooks are removed and the attention implementation restored in
`finally`, ablations are values of this call, so the next pass sees the model unchanged.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal

import torch

from activations.debugger import replay
from activations.debugger.attention import observed_attention
from activations.debugger.parts import ModelParts, detach_scale, norm_scale

NodeKind = Literal["mlp", "attention"]


@dataclass(frozen=True)
class Ablation:
    """Set a node to `value` at a token: an MLP neuron's activation (act(gate)·in), or all the
    attention probabilities of a head from a token (TDB's ATTN_QK_PROBS at [token, All, head]).
    `scale` multiplies instead of setting (value is then the factor). An MLP neuron's ablation
    may cover every token (token None) and only those where its (gate, in) signs are
    `signs` (a GLU quadrant, in the model's own frame)."""

    kind: NodeKind
    layer: int
    token: int | None
    index: int
    value: float
    scale: bool = False
    signs: tuple[int, int] | None = None


@dataclass(frozen=True)
class Trace:
    """Explain a node instead of the loss: an MLP neuron's gate pre-activation (TDB traces from
    the pre-activation; a GLU's gate is its counterpart), or a head's attention score from `token`
    to `attended_to` (through query and key, or one of them)."""

    kind: NodeKind
    layer: int
    token: int
    index: int
    attended_to: int | None = None
    through: Literal["QK", "Q", "K"] = "QK"


@dataclass(frozen=True)
class Variant:
    ids: tuple[int, ...]
    targets: tuple[int, ...] = ()
    distractors: tuple[int, ...] = ()
    ablations: tuple[Ablation, ...] = ()
    trace: Trace | None = None
    backward: bool = True
    detach_final_scale: bool = True
    observe_attention: bool = True
    """False: the model's own attention implementation runs (no probabilities or values are
    read), for a pass that reads MLP neurons and logits alone (an intervention's)."""
    replay: PassResult | None = field(default=None, compare=False, repr=False)
    replay_layers: int = 0
    """The first decoder layers give what they gave in `replay`, an earlier pass without
    gradients of the same prompt (replay.py), and are not run again."""


@dataclass
class PassResult:
    """Everything [layers first, then tokens], float32 on the CPU, batch dimension gone."""

    ids: list[int]
    logits: torch.Tensor  # [T, V]
    loss: float | None
    embedding: torch.Tensor  # [T, D], the residual stream entering layer 0
    final_residual: torch.Tensor  # [T, D], entering the final norm
    final_scale: torch.Tensor  # [T], the final norm's scale
    gate: list[torch.Tensor | None]  # [T, N] per layer (None for a plain MLP), stacked on use
    in_: list[torch.Tensor | None]
    post: torch.Tensor  # [L, T, N]: act(gate)·in, as the output projection reads it
    probs: torch.Tensor | None  # [L, H, T, S]; None where attention was not observed
    values: torch.Tensor | None  # [L, KV, S, head_dim]
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    """"embedding", "final_residual" [T, D]; "post" [L, T, N]; "probs" [L, H, T, S]; absent
    where no backward pass ran."""
    traced_value: float | None = None
    layer_outputs: list = field(default_factory=list, repr=False)
    """Each decoder layer's output, kept by a pass without gradients (for replay.py)."""


class _Recorder:
    """The hooks of one pass: keeps graph-connected tensors, applies this pass's ablations."""

    def __init__(self, parts: ModelParts, variant: Variant) -> None:
        self.parts = parts
        self.variant = variant
        n = parts.n_layers
        self.gate: list[torch.Tensor | None] = [None] * n
        self.in_: list[torch.Tensor | None] = [None] * n
        self.post: list[torch.Tensor | None] = [None] * n
        self.probs: list[torch.Tensor | None] = [None] * n
        self.values: list[torch.Tensor | None] = [None] * n
        self.embedding: torch.Tensor | None = None
        self.final_residual: torch.Tensor | None = None
        self.traced: torch.Tensor | None = None
        self.last_logits: torch.Tensor | None = None  # [1, V], graph-connected (a logit loss)
        self.unembedded: torch.Tensor | None = None  # [B, T, V] as the unembedding returned it
        self.applied: dict[int, int] = {}
        self.layer_outputs: list = [None] * n

    def _ablations(self, kind: NodeKind, layer: int) -> list[Ablation]:
        return [a for a in self.variant.ablations if a.kind == kind and a.layer == layer]

    def attention(self, layer, query, key, probs):
        trace = self.variant.trace
        if trace is not None and trace.kind == "attention" and trace.layer == layer:
            q = query[0, trace.index, trace.token]
            k = key[0, trace.index, trace.attended_to]
            q = q.detach() if trace.through == "K" else q
            k = k.detach() if trace.through == "Q" else k
            scaling = self.parts.attentions[layer].scaling
            self.traced = (q.float() * k.float()).sum() * scaling
        ablations = self._ablations("attention", layer)
        if ablations:
            probs = probs.clone()
            for a in ablations:
                row = probs[0, a.index, a.token]
                probs[0, a.index, a.token] = row * a.value if a.scale else a.value
        self.probs[layer] = probs
        return probs

    def values_of(self, layer: int, value: torch.Tensor) -> None:
        self.values[layer] = value

    def hooks(self) -> list:
        handles = [self.parts.layers[0].register_forward_pre_hook(self._enter, with_kwargs=True)]
        norm = self.parts.final_norm
        handles.append(norm.register_forward_hook(self._final_norm))
        for site in self.parts.sites:
            layer = site.layer
            handles.append(site.out_module.register_forward_pre_hook(self._post(layer)))
            if site.adapter.fused_gate_in:
                handles.append(site.in_module.register_forward_hook(self._fused(site)))
            elif site.gate_module is not None:
                handles.append(site.gate_module.register_forward_hook(self._keep(self.gate, layer)))
                handles.append(site.in_module.register_forward_hook(self._keep(self.in_, layer)))
        return handles

    def _enter(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        # frozen weights: the stream is made a leaf to differentiate
        if torch.is_grad_enabled() and not hidden.requires_grad:
            hidden = hidden.detach().requires_grad_(True)
        self.embedding = hidden
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def _final_norm(self, module, args, output):
        self.final_residual = args[0]
        if self.variant.detach_final_scale:
            return detach_scale(module, args[0], output)
        return output

    def _where(self, layer: int, ablation: Ablation, n_tokens: int) -> torch.Tensor:
        """The tokens an MLP ablation covers, [T] of bool."""
        device = self.parts.unembedding.device
        where = torch.zeros(n_tokens, dtype=torch.bool, device=device)
        if ablation.token is None:
            where[:] = True
        else:
            where[ablation.token] = True
        if ablation.signs is not None and self.gate[layer] is not None:
            gate = self.gate[layer][0, :, ablation.index]
            in_ = self.in_[layer][0, :, ablation.index]
            gate_sign, in_sign = ablation.signs
            where &= (torch.sign(gate) == gate_sign) & (torch.sign(in_) == in_sign)
        return where

    @staticmethod
    def _keep(store: list, layer: int):
        def hook(module, args, output):
            store[layer] = output

        return hook

    def _fused(self, site):
        def hook(module, args, output):
            self.gate[site.layer], self.in_[site.layer] = site.split_gate_in(output)

        return hook

    def _post(self, layer: int):
        def hook(module, args):
            post = args[0]
            trace = self.variant.trace
            if trace is not None and trace.kind == "mlp" and trace.layer == layer:
                self.traced = self.gate[layer][0, trace.token, trace.index].float()
            ablations = self._ablations("mlp", layer)
            if ablations:
                post = post.clone()
                for a in ablations:
                    where = self._where(layer, a, post.shape[1])
                    old = post[0, :, a.index]
                    new = old * a.value if a.scale else torch.full_like(old, a.value)
                    post[0, :, a.index] = torch.where(where, new, old)
                self.applied[layer] = self.applied.get(layer, 0) + 1
            self.post[layer] = post
            return (post, *args[1:])

        return hook


class _Observer:
    """The attention observer of one pass (attention.AttentionObserver), its recorder's."""

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def attention(self, layer, query, key, probs):
        return self.recorder.attention(layer, query, key, probs)

    def values(self, layer, value):
        self.recorder.values_of(layer, value)


def _logits_hook(recorder: _Recorder, last_only: bool):
    """Logits that carry a gradient only where the explained scalar reads them: a logit
    difference reads the last token's, recomputed from its row alone and written into the
    others (kept as the recorder's `last_logits`), a traced node none. Without it the backward
    pass would multiply every token's zero logit gradients by the unembedding ([T, V] × [V, D],
    about a tenth of the pass on a small model)."""

    def hook(module, args, output):
        logits = output.detach()
        if last_only:
            last = module.forward(args[0][:, -1:])  # its hooks (this one) do not run again
            logits[:, -1:] = last
            recorder.last_logits = last[0]
            recorder.unembedded = logits
        return logits

    return hook


def logit_difference(logits: torch.Tensor, targets, distractors) -> torch.Tensor:
    """TDB's loss: mean logit of the targets at the last token minus that of the distractors."""
    last = logits[-1].float()
    loss = last[list(targets)].mean()
    if distractors:
        loss = loss - last[list(distractors)].mean()
    return loss


def run_pass(parts: ModelParts, variant: Variant) -> PassResult:
    """One forward and (unless variant.backward is False) one backward pass."""
    recorder = _Recorder(parts, variant)
    model = parts.model
    device = parts.unembedding.device
    ids = torch.tensor([list(variant.ids)], device=device)
    explains = variant.backward and (variant.trace is not None or bool(variant.targets))
    reads_heads = any(a.kind == "attention" for a in variant.ablations) or (
        variant.trace is not None and variant.trace.kind == "attention"
    )
    if reads_heads and not variant.observe_attention:
        raise ValueError("a pass that ablates or traces attention heads must observe attention")
    replay.check(variant, explains)
    handles = recorder.hooks()  # from here on, removed in `finally` below
    unembed = model.get_output_embeddings()
    if explains and unembed is not None:
        hook = _logits_hook(recorder, last_only=variant.trace is None)
        handles.append(unembed.register_forward_hook(hook))
    if not explains:
        handles += replay.keep_layer_outputs(parts, recorder.layer_outputs)
    observed = (
        observed_attention(model, _Observer(recorder))
        if variant.observe_attention
        else contextlib.nullcontext()
    )
    try:
        grad = torch.enable_grad() if explains else torch.no_grad()
        with grad, observed, replay.replayed(parts, recorder, variant):
            output = model(input_ids=ids, use_cache=False)
            logits = output.logits[0]
    finally:
        for handle in handles:
            handle.remove()
    loss = None
    target = None
    if variant.trace is not None:
        target = recorder.traced
    elif variant.targets:
        read = logits
        if recorder.unembedded is not None and output.logits is recorder.unembedded:
            read = recorder.last_logits  # the model's logits are the unembedding's own
        loss = logit_difference(read, variant.targets, variant.distractors)
        target = loss
    return _result(parts, recorder, variant, logits, loss, target)


def _result(parts, recorder: _Recorder, variant, logits, loss, target) -> PassResult:
    def cpu(t: torch.Tensor) -> torch.Tensor:
        return t.detach()[0].float().cpu()

    def stack(tensors) -> torch.Tensor | None:
        if any(t is None for t in tensors):
            return None
        return torch.stack([t.detach()[0] for t in tensors]).float().cpu()

    result = PassResult(
        ids=list(variant.ids),
        logits=logits.detach().float().cpu(),
        loss=None if loss is None else float(loss.detach()),
        embedding=cpu(recorder.embedding),
        final_residual=cpu(recorder.final_residual),
        final_scale=norm_scale(parts.final_norm, recorder.final_residual.detach())[0, :, 0].cpu(),
        gate=[None if g is None else cpu(g) for g in recorder.gate],
        in_=[None if u is None else cpu(u) for u in recorder.in_],
        post=stack(recorder.post),
        probs=stack(recorder.probs),
        values=stack(recorder.values),
        traced_value=None if recorder.traced is None else float(recorder.traced.detach()),
        layer_outputs=recorder.layer_outputs,
    )
    if target is None or not variant.backward or not target.requires_grad:
        return result
    n = parts.n_layers
    inputs = [recorder.embedding, recorder.final_residual, *recorder.post, *recorder.probs]
    grads = torch.autograd.grad(target, inputs, allow_unused=True)
    full = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads, strict=True)]
    result.grads = {
        "embedding": cpu(full[0]),
        "final_residual": cpu(full[1]),
        "post": stack(full[2 : 2 + n]),
        "probs": stack(full[2 + n :]),
    }
    return result
