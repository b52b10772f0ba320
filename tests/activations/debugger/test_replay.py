"""A pass that replays the first layers of an earlier one gives what a full pass gives, and leaves
the model as it was."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import registry
from activations.debugger.engine import engine_of
from activations.debugger.passes import Ablation, Variant
from activations.models.live import ModelRunner

IDS = (2, 7, 12, 9, 30, 41, 5, 18)


@pytest.fixture(scope="module")
def engine(tiny_models):
    return engine_of(
        ModelRunner(registry.register_model("replay-llama", str(tiny_models["llama"])))
    )


@pytest.mark.parametrize("observe_attention", [True, False])
def test_a_replayed_pass_equals_a_full_pass(engine, observe_attention):
    plain = Variant(IDS, backward=False, observe_attention=observe_attention)
    ablated = replace(plain, ablations=(Ablation("mlp", 1, None, 3, 0.0),))
    before = engine.run(plain).result
    full = engine.run(ablated).result
    replayed = engine.run(replace(ablated, replay=before, replay_layers=1)).result
    assert torch.equal(replayed.logits, full.logits)
    assert torch.equal(replayed.post, full.post)
    assert not torch.equal(replayed.logits, before.logits)
    if observe_attention:
        assert torch.equal(replayed.probs, full.probs)
    assert all("forward" not in block.__dict__ for block in engine.parts.layers)
    assert torch.equal(engine.run(plain).result.logits, before.logits)


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_a_replay_that_could_differ_is_refused_and_leaves_no_hook(engine):
    plain = Variant(IDS, backward=False, observe_attention=False)
    before = engine.run(plain).result
    hooks = _hooks(engine.parts.model)
    early = replace(plain, ablations=(Ablation("mlp", 0, None, 3, 0.0),))
    with pytest.raises(ValueError, match="ablation in a replayed layer"):
        engine.run(replace(early, replay=before, replay_layers=1))
    with pytest.raises(ValueError, match="another prompt"):
        engine.run(replace(plain, ids=IDS[:-1], replay=before, replay_layers=1))
    with pytest.raises(ValueError, match="no attention to copy"):
        engine.run(replace(plain, observe_attention=True, replay=before, replay_layers=1))
    assert _hooks(engine.parts.model) == hooks
