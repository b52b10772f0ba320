"""The debugger of one loaded model: its parts and weights (read once), and passes run on the
model's own worker thread (activations.models.worker), never on a second copy of the model."""

from __future__ import annotations

import threading
import weakref
from dataclasses import replace

import torch

from activations.debugger.errors import DebuggerInputError, DebuggerRequestError
from activations.debugger.parts import ModelParts, find_parts
from activations.debugger.passes import Ablation, PassResult, Variant, run_pass
from activations.debugger.scalars import Scalars, Weights
from activations.models.adapters import glu_refactor_signs
from activations.models.live import ModelRunner
from activations.models.tokens import Tokens


class Engine:
    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self.parts: ModelParts = find_parts(runner.model, runner.sites)
        signs = [
            glu_refactor_signs(s).float().cpu() if runner.metadata.refactor_glu and s.is_glu
            else None
            for s in runner.sites
        ]  # fmt: skip
        self.weights = Weights(self.parts, signs)

    @property
    def n_neurons(self) -> int:
        return self.parts.sites[0].n_neurons

    def check_node(self, kind: str, layer: int, index: int, token: int, n_tokens: int) -> None:
        """Raises DebuggerRequestError naming the valid range of what is out of it."""
        n_layers = self.parts.n_layers
        if not 0 <= layer < n_layers:
            raise DebuggerRequestError(
                f"layer {layer} is out of range: valid layers are 0-{n_layers - 1}"
            )
        count = self.n_neurons if kind == "mlp" else self.parts.n_heads
        what = "neuron" if kind == "mlp" else "attention head"
        if not 0 <= index < count:
            raise DebuggerRequestError(
                f"{what} {index} is out of range: valid {what}s are 0-{count - 1}"
            )
        if not -n_tokens <= token < n_tokens:
            raise DebuggerRequestError(
                f"token {token} is out of range: the prompt has {n_tokens} tokens"
            )

    def _own_frame(self, ablation: Ablation, n_tokens: int) -> Ablation:
        """An ablation as the model's own modules see it: a token counted from the start, and
        where the registry looks at the model refactored (--refactor-glu), a value set on a
        flipped neuron negated and its quadrant's in sign flipped."""
        token = None if ablation.token is None else ablation.token % n_tokens
        sign = self.weights.signs[ablation.layer]
        if ablation.kind != "mlp" or sign is None or float(sign[ablation.index]) > 0:
            return replace(ablation, token=token)
        value = ablation.value if ablation.scale else -ablation.value
        signs = None if ablation.signs is None else (ablation.signs[0], -ablation.signs[1])
        return replace(ablation, token=token, value=value, signs=signs)

    def run(self, variant: Variant) -> Scalars:
        """One forward and one backward pass (call on the model's worker thread)."""
        ablations = tuple(self._own_frame(a, len(variant.ids)) for a in variant.ablations)
        variant = replace(variant, ablations=ablations)
        result: PassResult = run_pass(self.parts, variant)
        return Scalars(result, self.weights)


def single_token(tokens: Tokens, text: str, what: str) -> int:
    """The id of a text that is one token; else why not (how it tokenizes)."""
    ids = tokens.tokenizer(text, add_special_tokens=False).input_ids
    if len(ids) != 1:
        pieces = [tokens.tokenizer.decode([i]) for i in ids]
        raise DebuggerInputError(
            f"{what} {text!r} is not one token: it tokenizes as {len(ids)} tokens {pieces}"
        )
    return ids[0]


_ENGINES: weakref.WeakKeyDictionary[ModelRunner, Engine] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def engine_of(runner: ModelRunner) -> Engine:
    """The runner's debugger, made on first use (loads the model)."""
    with _LOCK:
        engine = _ENGINES.get(runner)
        if engine is None:
            engine = _ENGINES[runner] = Engine(runner)
        return engine


def no_grad_forward(runner: ModelRunner, ids: list[int]) -> torch.Tensor:
    """A bare forward pass's logits [T, V] (the baseline interventions are compared with)."""
    device = engine_of(runner).parts.unembedding.device
    with torch.inference_mode():
        return runner.model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0]
