"""Where to add a derived scalar, a model family and a route: each is one place, shown by doing
it. (The model family: tests/activations/models/test_adapters.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from fastapi import APIRouter
from fastapi.testclient import TestClient

from activation_server import app as app_module
from activation_server.app import create_app
from activations.collate import kernel
from tests.activations.reference import assert_columns_identical
from tests.servers import LOCAL
from tests.tiny import random_documents, write_jsonl

ROOT = Path(__file__).parents[1]
# eager first: the others are compared with its file
ENGINES = ["eager", "compiled", "kernel"] + (["triton"] if find_spec("triton") else [])
TOY_ROW = """
    GluSite(
        hook="hook_gate_abs",
        dst="mlp_gate_abs",
        label="|gate| (toy)",
        card_position=4,
        max_gate_signs=(1, -1),
        flips_with_refactor=False,
        compute=lambda gate, in_, act: abs(gate),
    ),
"""
SCRIPT = """
import json, sys
import registry
from activations.collate import CollateConfig, collate
from activation_server.app import create_app
from fastapi.testclient import TestClient

model, corpus, out, engines = sys.argv[1:5]
registry.register_model("toy", model, user_visible_name="Toy")
for engine in engines.split(","):
    path = out if engine == "eager" else out.replace(".parquet", f"-{engine}.parquet")
    collate(CollateConfig(model="toy", out=path, corpus=corpus, top_k=4, batch_size=3,
                          engine=engine, progress=False))
registry.register_neuron_dataset_metadata(
    "toy", "mlp_gate_abs", "Toy |gate|", out, format="glu_parquet", model="toy", corpus=corpus)
with TestClient(create_app(), base_url="http://127.0.0.1") as client:
    answers = {
        "schema": client.get("/schema").json(),
        "record": client.get("/neuron_record/toy/mlp_gate_abs/1/5").json(),
        "live": client.post("/activations", json={
            "model": "toy", "text": "w1 w2 w3", "layer": 0, "neurons": [4],
            "dst": "mlp_gate_abs"}).json(),
        "gate": client.post("/activations", json={
            "model": "toy", "text": "w1 w2 w3", "layer": 0, "neurons": [4],
            "dst": "mlp_pre_act"}).json(),
        "enum": client.get("/openapi.json").json()["components"]["schemas"]
            ["DerivedScalarType"]["enum"],
    }
print(json.dumps(answers))
"""


def test_a_derived_scalar_is_one_row_of_the_vocabulary(tmp_path, tiny_models):
    """A copy of the code with one row added to GLU_SITES collates (with every engine: eager,
    compiled, the C kernel, Triton under its interpreter), serves and runs live the new derived
    scalar: its columns in the file, its records, its live values."""
    copy = tmp_path / "code"
    for package in ("registry", "activations", "activation_server"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__py*"))
    vocabulary = copy / "registry" / "vocabulary.py"
    source = vocabulary.read_text()
    anchor = "GLU_SITES: tuple[GluSite, ...] = (\n"
    assert anchor in source
    vocabulary.write_text(source.replace(anchor, anchor + textwrap.dedent(TOY_ROW)[1:], 1))

    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(7, seed=3))
    out = tmp_path / "toy.parquet"
    # every engine: the CPU ones, and the Triton one under its interpreter
    env = {**os.environ, "PYTHONPATH": f"{copy}{os.pathsep}{ROOT}", "TRITON_INTERPRET": "1"}
    engines = ENGINES if kernel.available() else [e for e in ENGINES if e != "kernel"]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_models["llama"]), str(corpus), str(out),
         ",".join(engines)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])

    # the file: the new site's columns, consistent with hook_pre's (|gate| ranks as gate does)
    rows = pq.read_table(out).to_pylist()
    for row in rows:
        for q in ("gate+_in+", "gate-_in-"):
            sign = 1 if q.startswith("gate+") else -1
            pre, toy = row[f"{q}_hook_pre_mean"], row[f"{q}_hook_gate_abs_mean"]
            assert (pre != pre and toy != toy) or abs(toy - sign * pre) < 1e-5
            assert row[f"{q}_hook_gate_abs_max_indices"] == row[f"{q}_hook_pre_max_indices"]
            assert row[f"{q}_hook_gate_abs_max_values"] == [
                abs(v) for v in row[f"{q}_hook_pre_max_values"]
            ]
    # every engine gives the same file: counts, maxima, documents, positions; sums to rounding
    eager = pq.read_table(out)
    exact = [c for c in eager.column_names if not c.endswith(("_mean", "_total"))]
    assert "gate+_in+_hook_gate_abs_max_values" in exact
    for engine in engines[1:]:
        other = pq.read_table(str(out).replace(".parquet", f"-{engine}.parquet"))
        assert other.column_names == eager.column_names, engine
        assert_columns_identical(eager, other, exact)
        for column in set(eager.column_names) - set(exact):
            np.testing.assert_allclose(
                eager[column].to_numpy(), other[column].to_numpy(), rtol=1e-5, atol=1e-6,
                err_msg=f"{engine}: {column}",
            )  # fmt: skip
    # the server: in the vocabulary, the enums, the records and live
    assert "hook_gate_abs" in [h["hook"] for h in answers["schema"]["hooks"]]
    assert "mlp_gate_abs" in answers["enum"]
    assert answers["record"]["hook"] == "hook_gate_abs"
    examples = [e for q in answers["record"]["quadrants"] for e in q["examples"]["hook_gate_abs"]]
    assert examples and all(e["value"] >= 0 for e in examples)
    live = answers["live"]["results"][0]["neurons"][0]["values"]
    gate = answers["gate"]["results"][0]["neurons"][0]["values"]
    assert live == [abs(g) for g in gate]


def test_a_route_is_one_router_in_routes(monkeypatch):
    """A module of routes/ with a `router` (every route with a response_model), listed once."""
    toy = APIRouter(tags=["toy"])

    @toy.get("/toy/{n}", response_model=dict[str, int])
    async def double(n: int) -> dict[str, int]:
        return {"twice": 2 * n}

    toy_module = type("ToyRoutes", (), {"router": toy})
    monkeypatch.setattr(app_module, "ROUTES", [*app_module.ROUTES, toy_module])
    with TestClient(create_app(), base_url=LOCAL) as test_client:
        assert test_client.get("/toy/21").json() == {"twice": 42}
        assert "/toy/{n}" in test_client.get("/openapi.json").json()["paths"]


def test_every_api_route_has_a_response_model():
    """Every route of the API documents the shape of its answer (no bare `{}` schema)."""
    with TestClient(create_app(), base_url=LOCAL) as test_client:
        paths = test_client.get("/openapi.json").json()["paths"]
    undocumented = [
        f"{method.upper()} {path}"
        for path, methods in paths.items()
        for method, spec in methods.items()
        # the answer it gives when it works (501 for what is not served)
        if not next(r for code, r in sorted(spec["responses"].items()) if code in ("200", "501"))[
            "content"
        ]["application/json"]["schema"]
    ]
    assert len(paths) >= 7 and undocumented == []
