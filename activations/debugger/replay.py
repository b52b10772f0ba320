"""A forward pass that starts where an earlier pass of the same prompt left off: the decoder layers
before the first one a variant changes give what they gave then, so they are not run again (an
intervention's second pass at layer 15 of 30 computes half the model).

Their outputs are the earlier pass's own tensors (kept by `keep_layer_outputs` in a pass without
gradients), and what the debugger read in them (gate, in, act(gate)·in, attention) is copied
into this pass's recorder, so its result has every layer. The layers' own `forward` comes back
in `finally`: the next pass sees the model unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from activations.debugger.parts import ModelParts
    from activations.debugger.passes import Variant, _Recorder


def keep_layer_outputs(parts: ModelParts, outputs: list) -> list:
    """Hooks that keep each decoder layer's output (what a later pass replays); their handles."""

    def keep(layer: int):
        def hook(module, args, output):
            outputs[layer] = output

        return hook

    return [block.register_forward_hook(keep(i)) for i, block in enumerate(parts.layers)]


def check(variant: Variant, explains: bool) -> None:
    """A replay is exact only where nothing before its first live layer differs."""
    first = variant.replay_layers
    if variant.replay is None or first == 0:
        return
    earlier = variant.replay
    reasons = [
        (explains, "a pass with gradients"),
        (tuple(earlier.ids) != variant.ids, "another prompt"),
        (any(a.layer < first for a in variant.ablations), "an ablation in a replayed layer"),
        (variant.trace is not None, "a trace"),
        (any(o is None for o in earlier.layer_outputs[:first]), "no kept layer outputs"),
        (variant.observe_attention and earlier.probs is None, "no attention to copy"),
    ]
    for failed, why in reasons:
        if failed:
            raise ValueError(f"a pass cannot replay {first} layers of {why}")


@contextmanager
def replayed(parts: ModelParts, recorder: _Recorder, variant: Variant) -> Iterator[None]:
    """Inside the block, the first `variant.replay_layers` decoder layers return the earlier
    pass's outputs, and the recorder holds what that pass read there."""
    earlier, first = variant.replay, variant.replay_layers
    if earlier is None or first == 0:
        yield
        return
    for i in range(first):
        recorder.layer_outputs[i] = earlier.layer_outputs[i]
        recorder.post[i] = earlier.post[i][None]
        for mine, theirs in ((recorder.gate, earlier.gate), (recorder.in_, earlier.in_)):
            mine[i] = None if theirs[i] is None else theirs[i][None]
        if variant.observe_attention:
            recorder.probs[i] = earlier.probs[i][None]
            recorder.values[i] = earlier.values[i][None]
    own = [block.__dict__.get("forward") for block in parts.layers[:first]]
    try:
        for i, block in enumerate(parts.layers[:first]):
            output = earlier.layer_outputs[i]
            block.forward = lambda *args, _output=output, **kwargs: _output
        yield
    finally:
        for block, forward in zip(parts.layers[:first], own, strict=True):
            if forward is None:
                del block.forward
            else:
                block.forward = forward
