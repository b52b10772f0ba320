"""Brute-force records: full activation tensors and plain Python loops, written independently of
the streaming code, to check every column of its output."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

QUADRANT_TESTS = {
    "gate+_in+": lambda g, u: g > 0 and u > 0,
    "gate+_in-": lambda g, u: g > 0 and u < 0,
    "gate-_in+": lambda g, u: g < 0 and u > 0,
    "gate-_in-": lambda g, u: g < 0 and u < 0,
}


def full_activations(
    model: nn.Module, input_ids: list[list[int]], batch_size: int, pad_id: int = 0
) -> list[dict[int, dict]]:
    """Per document, per layer: gate, up, swish, post as numpy [T, N], padding cut off.

    The model runs on the same right-padded batches as the collation (a float32 matmul's last
    bit depends on the batch's shape, and the BOS token's values tie across documents), so that
    exact index comparisons are meaningful.
    """
    mlps = [m for _, m in model.named_modules() if hasattr(m, "down_proj") or hasattr(m, "c_fc")]
    fused = [hasattr(m, "gate_up_proj") for m in mlps]
    out = []
    for first in range(0, len(input_ids), batch_size):
        batch = input_ids[first : first + batch_size]
        width = max(len(ids) for ids in batch)
        padded = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
        held: dict[int, dict] = {layer: {} for layer in range(len(mlps))}
        handles = []
        for layer, mlp in enumerate(mlps):
            if fused[layer]:  # Phi-3: one projection, gate then in
                handles.append(mlp.gate_up_proj.register_forward_hook(_store(held[layer], "gu")))
                handles.append(mlp.down_proj.register_forward_pre_hook(_store_in(held[layer])))
            elif hasattr(mlp, "gate_proj"):
                handles.append(mlp.gate_proj.register_forward_hook(_store(held[layer], "g")))
                handles.append(mlp.up_proj.register_forward_hook(_store(held[layer], "u")))
                handles.append(mlp.down_proj.register_forward_pre_hook(_store_in(held[layer])))
            else:
                handles.append(mlp.c_proj.register_forward_pre_hook(_store_in(held[layer])))
        with torch.no_grad():
            model(input_ids=padded, attention_mask=mask)
        for h in handles:
            h.remove()
        for row, ids in enumerate(batch):
            doc = {}
            for layer, mlp in enumerate(mlps):
                doc[layer] = {name: t[row, : len(ids)] for name, t in held[layer].items()}
                if "gu" in doc[layer]:
                    both = doc[layer].pop("gu")
                    half = both.shape[1] // 2
                    doc[layer]["g"], doc[layer]["u"] = both[:, :half], both[:, half:]
                if "g" in doc[layer]:
                    gate = torch.from_numpy(doc[layer]["g"].copy())
                    act = mlp.activation_fn if fused[layer] else mlp.act_fn
                    doc[layer]["swish"] = act(gate).numpy()
            out.append(doc)
    return out


def _store(d, name):
    def hook(module, inputs, output):
        d[name] = output.detach().float().numpy().copy()

    return hook


def _store_in(d):
    def hook(module, inputs):
        d["post"] = inputs[0].detach().float().numpy().copy()

    return hook


def brute_force_records(acts: list[dict[int, dict]], k: int, glu: bool) -> dict[tuple, dict]:
    """{(layer, neuron): {column: value}} for the card's columns and our positions."""
    n_tokens = sum(doc[0]["post"].shape[0] for doc in acts)
    records = {}
    for layer in acts[0]:
        n_neurons = acts[0][layer]["post"].shape[1]
        for neuron in range(n_neurons):
            row = {}
            if glu:
                quadrants = QUADRANT_TESTS
                hooks = {
                    "hook_pre": "g",
                    "hook_pre_linear": "u",
                    "swish": "swish",
                    "hook_post": "post",
                }
            else:
                quadrants = {"all": lambda g, u: True}
                hooks = {"hook_post": "post"}
            for q, in_q in quadrants.items():
                members = []  # (doc, position, {hook: value})
                for doc, layers in enumerate(acts):
                    a = layers[layer]
                    for t in range(a["post"].shape[0]):
                        g = float(a["g"][t, neuron]) if glu else 0.0
                        u = float(a["u"][t, neuron]) if glu else 0.0
                        if in_q(g, u):
                            values = {h: float(a[key][t, neuron]) for h, key in hooks.items()}
                            members.append((doc, t, values))
                row[f"{q}_freq"] = len(members) / n_tokens
                for h in hooks:
                    total = math.fsum(m[2][h] for m in members)
                    row[f"{q}_{h}_mean"] = total / len(members) if members else math.nan
                    if h == "swish" and q.startswith("gate+"):
                        continue
                    best_per_doc = {}
                    for doc, t, values in members:
                        v = values[h]
                        if doc not in best_per_doc or abs(v) > abs(best_per_doc[doc][0]):
                            best_per_doc[doc] = (v, t)
                    ranked = sorted(
                        best_per_doc.items(), key=lambda item: (-abs(item[1][0]), item[0])
                    )
                    ranked = ranked[:k]
                    pad = k - len(ranked)
                    row[f"{q}_{h}_max_values"] = [v for _, (v, _) in ranked] + [0.0] * pad
                    # empty slots: a real document index (the lowest read and not listed),
                    # value 0.0, as the published dataset's writer leaves them; -1 only once
                    # every document read is listed
                    listed = [d for d, _ in ranked]
                    spare = [d for d in range(len(acts)) if d not in listed] + [-1] * k
                    row[f"{q}_{h}_max_indices"] = listed + spare[:pad]
                    row[f"{q}_{h}_max_positions"] = [t for _, (_, t) in ranked] + [-1] * pad
            records[(layer, neuron)] = row
    return records


def assert_matches(table_rows: list[dict], expected: dict[tuple, dict], atol: float = 1e-5) -> int:
    """Compare every expected column; returns how many values were checked."""
    checked = 0
    assert len(table_rows) == len(expected)
    for row in table_rows:
        want = expected[(row["layer"], row["neuron"])]
        for column, value in want.items():
            got = row[column]
            where = f"layer {row['layer']} neuron {row['neuron']} {column}"
            if column.endswith(("_indices", "_positions")):
                assert got == value, f"{where}: {got} != {value}"
            elif isinstance(value, list):
                np.testing.assert_allclose(got, value, atol=atol, rtol=1e-4, err_msg=where)
            elif math.isnan(value):
                assert got is None or math.isnan(got), f"{where}: {got} is not NaN"
            else:
                assert math.isclose(got, value, rel_tol=1e-4, abs_tol=atol), (
                    f"{where}: {got} != {value}"
                )
            checked += 1
    return checked


def assert_same_up_to_ties(a_rows: list[dict], b_rows: list[dict], atol: float = 1e-5) -> None:
    """Two runs that differ only in float rounding (e.g. batch shapes): values close, and the
    same documents wherever the order is not decided by values closer than atol."""
    for a, b in zip(a_rows, b_rows, strict=True):
        for column, value in a.items():
            if not column.endswith("_max_values"):
                continue
            np.testing.assert_allclose(b[column], value, atol=atol, rtol=1e-4, err_msg=column)
            indices = column.replace("_values", "_indices")
            values = np.abs(np.asarray(value))
            for i, (x, y) in enumerate(zip(a[indices], b[indices], strict=True)):
                near = np.abs(values - values[i]) <= atol
                if near.sum() == 1:
                    assert x == y, f"{column} rank {i}: document {x} != {y}"


def assert_columns_identical(a, b, columns=None) -> None:
    """Bit-for-bit equal columns of two pyarrow tables (NaN equals NaN)."""
    for column in columns or a.column_names:
        x, y = a.column(column).combine_chunks(), b.column(column).combine_chunks()
        if hasattr(x, "flatten"):
            assert x.offsets.equals(y.offsets), column
            x, y = x.flatten(), y.flatten()
        np.testing.assert_array_equal(x.to_numpy(), y.to_numpy(), err_msg=column)
