"""Every derived scalar of a debugger pass against a brute force written here on a tiny Llama
(grouped-query attention: 4 heads, 2 key/value heads): plain hooks and eager attention's own
probabilities, torch.autograd.grad of the logit difference through a final norm whose scale is
held fixed by hand, direct effects as write · scale · γ ⊙ (W_U[target] − W_U[distractor]),
ablations and traces done by hand."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import registry
from activations.debugger.engine import engine_of
from activations.debugger.nodes import Node, output_token_scores, top_nodes, values_of
from activations.debugger.passes import Ablation, Trace, Variant
from activations.models.live import ModelRunner
from registry.debugger_vocabulary import NODE_TABLE_GROUPS, NodeType, TdbScalar

IDS = (2, 7, 12, 9, 30, 41, 5, 18)
TARGET, DISTRACTOR = 20, 33


@pytest.fixture(scope="module")
def runner(tiny_models):
    metadata = registry.register_model("debug-llama", str(tiny_models["llama"]))
    return ModelRunner(metadata)


@pytest.fixture(scope="module")
def reference(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], attn_implementation="eager")
    return model.eval()


def brute_force_on(folder, ids, target, distractor, ablate=None):
    """The brute force on a saved model's folder (for the routes' tests)."""
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    return brute_force(model, ablate, ids=tuple(ids), target=target, distractor=distractor)


def brute_force(model, ablate=None, trace=None, ids=IDS, target=TARGET, distractor=DISTRACTOR):
    """Hooks written here: each layer's act(gate)·in, gate, value vectors and final residual;
    eager attention's probabilities; the final RMSNorm's scale detached by hand."""
    posts, gates, values, final = {}, {}, {}, {}
    handles = []
    for i, layer in enumerate(model.model.layers):

        def pre(module, args, i=i):
            x = args[0]
            if ablate is not None and ablate[0] == i:
                x = x.clone()
                x[0, ablate[1], ablate[2]] = ablate[3]
            posts[i] = x
            return (x,)

        handles.append(layer.mlp.down_proj.register_forward_pre_hook(pre))
        handles.append(
            layer.mlp.gate_proj.register_forward_hook(lambda m, a, o, i=i: gates.__setitem__(i, o))
        )
        handles.append(
            layer.self_attn.v_proj.register_forward_hook(
                lambda m, a, o, i=i: values.__setitem__(i, o)
            )
        )
    norm = model.model.norm

    def fixed_scale(module, args, output):
        x = args[0]
        final["x"] = x
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.variance_epsilon)
        return module.weight * (x * scale.detach())

    handles.append(norm.register_forward_hook(fixed_scale))
    try:
        out = model(input_ids=torch.tensor([ids]), output_attentions=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    logits = out.logits[0]
    loss = logits[-1, target] - logits[-1, distractor]
    probs = list(out.attentions)
    n = len(posts)
    explained = loss if trace is None else gates[trace[0]][0, trace[1], trace[2]]
    inputs = [posts[i] for i in range(n)] + probs + [final["x"]]
    grads = torch.autograd.grad(explained, inputs, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads, strict=True)]
    return {
        "logits": logits.detach(),
        "loss": float(loss.detach()),
        "post": [posts[i][0].detach() for i in range(n)],
        "post_grad": [g[0] for g in grads[:n]],
        "probs": [p[0].detach() for p in probs],
        "probs_grad": [g[0] for g in grads[n : 2 * n]],
        "values": [values[i][0].detach() for i in range(n)],
        "gate": [gates[i][0].detach() for i in range(n)],
        "final_x": final["x"][0].detach(),
    }


def close(a, b):
    return torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5)


def test_activations_gradients_and_direct_effects_equal_the_brute_force(runner, reference):
    store = engine_of(runner).run(Variant(IDS, (TARGET,), (DISTRACTOR,)))
    ref = brute_force(reference)
    assert store.result.loss == pytest.approx(ref["loss"], abs=1e-5)
    close(store.result.logits, ref["logits"])
    model = reference
    direction = model.lm_head.weight[TARGET] - model.lm_head.weight[DISTRACTOR]
    x = ref["final_x"]
    scale = torch.rsqrt(x.pow(2).mean(-1) + model.model.norm.variance_epsilon)
    # the gradient at the final residual: zero except at the last token
    final_grad = torch.zeros_like(x)
    final_grad[-1] = scale[-1] * model.model.norm.weight * direction
    for layer, block in enumerate(model.model.layers):
        post = ref["post"][layer]
        w_out = block.mlp.down_proj.weight.T  # [N, D]
        close(store.get(TdbScalar.MLP_POST_ACT, layer), post)
        gate = ref["gate"][layer]
        close(store.get(TdbScalar.MLP_PRE_ACT, layer), gate)
        close(store.get(TdbScalar.MLP_SWISH, layer), torch.nn.functional.silu(gate))
        close(store.get(TdbScalar.MLP_PRE_LINEAR, layer) * torch.nn.functional.silu(gate), post)
        close(store.get(TdbScalar.MLP_ACT_TIMES_GRAD, layer), post * ref["post_grad"][layer])
        close(store.get(TdbScalar.MLP_WRITE_NORM, layer), post.abs() * w_out.norm(dim=1))
        direct = post * (final_grad @ w_out.T)
        close(store.get(TdbScalar.MLP_WRITE_TO_FINAL_RESIDUAL_GRAD, layer), direct)
        probs = ref["probs"][layer]  # [H, T, S]
        close(store.get(TdbScalar.ATTN_QK_PROBS, layer), probs.permute(1, 2, 0))
        close(
            store.get(TdbScalar.UNFLATTENED_ATTN_ACT_TIMES_GRAD, layer),
            (probs * ref["probs_grad"][layer]).permute(1, 2, 0),
        )
        # per head and token pair: p(t,s) · v(s) of the head's key/value group · W_O[h]
        attn = block.self_attn
        v = ref["values"][layer].view(len(IDS), -1, attn.head_dim)  # [S, KV, d]
        w_o = attn.o_proj.weight  # [D, H * d]
        n_heads = w_o.shape[1] // attn.head_dim
        for head in range(n_heads):
            kv = head // attn.num_key_value_groups
            writes = v[:, kv] @ w_o[:, head * attn.head_dim : (head + 1) * attn.head_dim].T
            p = probs[head]  # [T, S]
            norm = store.get(TdbScalar.UNFLATTENED_ATTN_WRITE_NORM, layer)[..., head]
            close(norm, p * writes.norm(dim=-1)[None, :])
            effect = store.get(TdbScalar.UNFLATTENED_ATTN_WRITE_TO_FINAL_RESIDUAL_GRAD, layer)
            close(effect[..., head], p * (final_grad @ writes.T))
    assert store.get(TdbScalar.MLP_ACT_TIMES_GRAD, 1).abs().sum() > 0


def test_an_ablation_equals_the_same_hook_done_by_hand(runner, reference):
    store = engine_of(runner).run(
        Variant(IDS, (TARGET,), (DISTRACTOR,), ablations=(Ablation("mlp", 0, 3, 5, 0.0),))
    )
    ref = brute_force(reference, ablate=(0, 3, 5, 0.0))
    plain = brute_force(reference)
    assert store.result.loss == pytest.approx(ref["loss"], abs=1e-5)
    assert ref["loss"] != pytest.approx(plain["loss"], abs=1e-6)
    close(store.result.logits, ref["logits"])
    assert float(store.get(TdbScalar.MLP_POST_ACT, 0)[3, 5]) == 0.0


def test_a_head_ablation_zeroes_its_row_and_changes_what_follows(runner, reference):
    engine = engine_of(runner)
    plain = engine.run(Variant(IDS, (TARGET,), (DISTRACTOR,)))
    store = engine.run(
        Variant(IDS, (TARGET,), (DISTRACTOR,), ablations=(Ablation("attention", 0, 6, 3, 0.0),))
    )
    probs = store.get(TdbScalar.ATTN_QK_PROBS, 0)
    assert probs[6, :, 3].abs().sum() == 0
    close(probs[:6], plain.get(TdbScalar.ATTN_QK_PROBS, 0)[:6])
    assert store.result.loss != pytest.approx(plain.result.loss, abs=1e-6)


def test_a_traced_neuron_equals_autograd_of_its_gate(runner, reference):
    store = engine_of(runner).run(Variant(IDS, trace=Trace("mlp", 1, 5, 7)))
    ref = brute_force(reference, trace=(1, 5, 7))
    close(store.get(TdbScalar.MLP_ACT_TIMES_GRAD, 0), ref["post"][0] * ref["post_grad"][0])
    assert store.get(TdbScalar.MLP_ACT_TIMES_GRAD, 0)[:6].abs().sum() > 0
    # nothing after the traced token or layer contributes
    assert store.get(TdbScalar.MLP_ACT_TIMES_GRAD, 0)[6:].abs().sum() == 0
    assert store.get(TdbScalar.MLP_ACT_TIMES_GRAD, 1).abs().sum() == 0


def test_top_nodes_rank_every_layer_and_type_as_tdb_does(runner):
    store = engine_of(runner).run(Variant(IDS, (TARGET,), (DISTRACTOR,)))
    nodes = top_nodes(store, NODE_TABLE_GROUPS, 3)
    grads = values_of(store, NODE_TABLE_GROUPS[next(iter(NODE_TABLE_GROUPS))], nodes)
    assert len(grads) == len(nodes) == len(set(nodes))
    every = []
    for scalar in NODE_TABLE_GROUPS[list(NODE_TABLE_GROUPS)[1]]:  # act × grad
        for layer in store.layers(scalar):
            every += store.get(scalar, layer).reshape(-1).tolist()
    best = sorted(every, reverse=True)[:3]
    by_node = values_of(store, NODE_TABLE_GROUPS[list(NODE_TABLE_GROUPS)[1]], nodes)
    for value in best:
        assert any(v == pytest.approx(value) for v in by_node)
    wider = {n.node_type for n in top_nodes(store, NODE_TABLE_GROUPS, 40)}
    assert wider == {NodeType.MLP_NEURON, NodeType.ATTENTION_HEAD, NodeType.LAYER}


def test_a_neurons_output_tokens_are_its_write_through_the_unembedding(runner, reference):
    store = engine_of(runner).run(Variant(IDS, (TARGET,), (DISTRACTOR,)))
    node = Node(NodeType.MLP_NEURON, 1, (4, 9))
    scores = output_token_scores(store, [node])[0]
    write = store.result.post[1][4, 9] * reference.model.layers[1].mlp.down_proj.weight[:, 9]
    logits = (reference.lm_head.weight * reference.model.norm.weight) @ write
    close(scores, logits - logits.mean())


def test_logits_changed_after_the_unembedding_carry_the_loss_and_its_gradients(runner):
    """A model that transforms its logits after the unembedding (Gemma 2's soft cap; here
    doubled by a hook) explains its own logits: the loss and every gradient double."""
    engine = engine_of(runner)
    plain = engine.run(Variant(IDS, (TARGET,), (DISTRACTOR,)))

    def doubled(module, args, output):
        output.logits = output.logits * 2
        return output

    handle = engine.parts.model.register_forward_hook(doubled)
    try:
        store = engine.run(Variant(IDS, (TARGET,), (DISTRACTOR,)))
    finally:
        handle.remove()
    assert store.result.loss == pytest.approx(2 * plain.result.loss, abs=1e-5)
    close(store.result.logits, 2 * plain.result.logits)
    for name in ("post", "probs", "final_residual", "embedding"):
        close(store.result.grads[name], 2 * plain.result.grads[name])
    assert plain.result.grads["post"].abs().sum() > 0


@pytest.mark.parametrize("arch", ["olmo", "phi3"])
def test_other_families_their_norms_and_fused_projections(tiny_models, arch):
    """OLMo's final norm is a LayerNorm without weights (centered: the fixed-scale gradient is
    s·(g − mean g)); Phi-3 fuses gate and in, and q, k and v. The pass leaves the logits as the
    model's own forward pass has them."""
    metadata = registry.register_model(f"debug-{arch}", str(tiny_models[arch]))
    store = engine_of(ModelRunner(metadata)).run(Variant(IDS, (TARGET,), (DISTRACTOR,)))
    model = AutoModelForCausalLM.from_pretrained(tiny_models[arch]).eval()
    with torch.no_grad():
        close(store.result.logits, model(input_ids=torch.tensor([IDS])).logits[0])
    unembedding = model.lm_head.weight.detach()
    x = store.result.final_residual[-1]
    norm = model.model.norm
    centered = x - x.mean() if arch == "olmo" else x
    eps = 1e-5 if arch == "olmo" else norm.variance_epsilon  # OLMo's forward names 1e-5
    scale = torch.rsqrt(centered.pow(2).mean() + eps)
    gain = norm.weight.detach() if getattr(norm, "weight", None) is not None else 1.0
    g = gain * (unembedding[TARGET] - unembedding[DISTRACTOR])
    expected = scale * (g - g.mean() if arch == "olmo" else g)
    close(store.result.grads["final_residual"][-1], expected)
    heads = store.get(TdbScalar.ATTN_QK_PROBS, 0)
    close(heads.sum(1), torch.ones(len(IDS), heads.shape[-1]))  # each row of probabilities
    glu = store.get(TdbScalar.MLP_PRE_LINEAR, 1) * store.get(TdbScalar.MLP_SWISH, 1)
    close(glu, store.get(TdbScalar.MLP_POST_ACT, 1))


@pytest.mark.parametrize("through", ["QK", "Q", "K"])
def test_a_traced_head_equals_autograd_of_its_attention_score(runner, reference, through):
    """Head 3 of layer 1 (key/value head 1) from token 6 to token 2: its pre-softmax score,
    q·k/√d after rotary embeddings, by hand; Q or K alone hold the other side fixed."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    store = engine_of(runner).run(Variant(IDS, trace=Trace("attention", 1, 6, 3, 2, through)))
    model = reference
    attention = model.model.layers[1].self_attn
    posts, seen = {}, {}
    hooks = [model.model.layers[0].mlp.down_proj.register_forward_pre_hook(
        lambda m, a: posts.__setitem__(0, a[0]))]  # fmt: skip
    hooks.append(model.model.layers[1].input_layernorm.register_forward_hook(
        lambda m, a, o: seen.__setitem__("x", o)))  # fmt: skip
    try:
        model(input_ids=torch.tensor([IDS]), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    x = seen["x"]
    d = attention.head_dim
    q = attention.q_proj(x).view(1, len(IDS), -1, d).transpose(1, 2)
    k = attention.k_proj(x).view(1, len(IDS), -1, d).transpose(1, 2)
    cos, sin = model.model.rotary_emb(x, torch.arange(len(IDS))[None])
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    q_row, k_row = q[0, 3, 6], k[0, 3 // attention.num_key_value_groups, 2]
    q_row = q_row.detach() if through == "K" else q_row
    k_row = k_row.detach() if through == "Q" else k_row
    score = (q_row * k_row).sum() * attention.scaling
    assert store.result.traced_value == pytest.approx(float(score.detach()), abs=1e-5)
    (grad,) = torch.autograd.grad(score, [posts[0]])
    close(store.get(TdbScalar.MLP_ACT_TIMES_GRAD, 0), (posts[0] * grad)[0].detach())
