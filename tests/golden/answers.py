"""The golden answers: a tiny Llama collated over fixed documents, and every route's answer.

`python -m tests.golden.answers` writes them (run it only when a change of output is intended);
test_golden.py checks that the code still gives them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
REPO = HERE.parents[1]
GOLDEN = HERE / "golden.json"
TDB_FIXTURES = HERE.parent / "fixtures" / "tdb" / "collated-activations"
# fields of the file's metadata that name the machine or the run, not the result (in the file,
# and on the wire: a record's fileMetadata)
VOLATILE = {"load_seconds", "version", "model_path", "loadSeconds", "modelPath"}


def _normalise(value: Any, root: str) -> Any:
    """Paths under the temporary root become "<root>"; NaN becomes "NaN" (JSON has none)."""
    if isinstance(value, dict):
        return {k: _normalise(v, root) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normalise(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<root>").replace(str(REPO), "<repo>")
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def collate_tiny(root: Path) -> dict[str, Path]:
    import registry
    from activations.collate import CollateConfig, collate
    from tests.tiny import make_tiny_model, random_documents, write_jsonl

    model = make_tiny_model("llama", root / "model")
    corpus = write_jsonl(root / "docs.jsonl", random_documents(9, seed=5))
    registry.register_model("golden-llama", str(model), user_visible_name="Golden Llama")
    out = collate(
        CollateConfig(
            model="golden-llama",
            out=str(root / "golden.parquet"),
            corpus=str(corpus),
            top_k=4,
            batch_size=4,
            engine="eager",
            progress=False,
        )
    )
    for dst in ("mlp_post_act", "mlp_pre_act", "mlp_pre_linear", "mlp_swish"):
        registry.register_neuron_dataset_metadata(
            "golden-llama",
            dst,
            "Golden Llama",
            str(out),
            format="glu_parquet",
            model="golden-llama",
            corpus=str(corpus),
        )
    registry.register_neuron_dataset_metadata(
        "golden-tdb", "mlp_post_act", "Golden TDB", str(TDB_FIXTURES)
    )
    return {"model": model, "corpus": corpus, "parquet": out}


REQUESTS: list[tuple[str, str, dict | None]] = [
    ("GET", "/neuron_record/golden-llama/mlp_post_act/1/5", None),
    ("GET", "/neuron_record/golden-llama/mlp_pre_act/0/3", None),
    ("GET", "/neuron_record/golden-llama/mlp_pre_linear/0/7", None),
    ("GET", "/neuron_record/golden-llama/mlp_swish/1/2", None),
    ("GET", "/neuron_record/golden-llama/mlp_pre_act/0/3?hooks=all", None),
    ("GET", "/neuron_record/golden-llama/mlp_post_act/1/7?context=3", None),
    ("GET", "/neuron_record/golden-llama/mlp_post_act/1/7?context=3&activations=true", None),
    ("GET", "/neuron_record/golden-llama/mlp_post_act/0/24", None),
    ("GET", "/neuron_record/golden-llama/mlp_post_act/2/0", None),
    ("GET", "/neuron_record/golden-lama/mlp_post_act/0/0", None),
    ("GET", "/neuron_record/golden-tdb/mlp_post_act/0/1", None),
    ("GET", "/neuron_record/golden-tdb/mlp_post_act/5/42", None),
    ("GET", "/neuron_record/golden-tdb/mlp_post_act/5/43", None),
    (
        "POST",
        "/neuron_record",
        {"dst": "mlp_post_act", "layerIndex": 1, "activationIndex": 5, "shortName": "golden-llama"},
    ),
    (
        "POST",
        "/neuron_record",
        {"dst": "mlp_post_act", "layerIndex": 0, "activationIndex": 1, "shortName": "golden-tdb"},
    ),
    (
        "POST",
        "/activations",
        {"model": "golden-llama", "text": "w1 w2 w3 w4", "layer": 1, "neurons": [0, 5]},
    ),
    (
        "POST",
        "/activations",
        {
            "model": "golden-llama",
            "texts": ["w5 w6", "w7"],
            "layer": 0,
            "topK": 3,
            "dst": "mlp_pre_act",
        },
    ),
    ("POST", "/activations", {"model": "golden-llama", "text": "w1", "layer": 9}),
    ("GET", "/datasets?model=golden-llama", None),
    ("GET", "/datasets?model=golden-tdb", None),
    ("GET", "/models", None),
]


def table_rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def answers(root: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from activation_server.app import create_app
    from activation_server.settings import ServerSettings
    from activations.collate.writer import read_metadata

    paths = collate_tiny(root)
    out: dict[str, Any] = {
        "rows": table_rows(paths["parquet"]),
        "metadata": read_metadata(paths["parquet"]),
        "routes": [],
    }
    with TestClient(
        create_app(ServerSettings(max_tokens_per_request=40)), base_url="http://127.0.0.1"
    ) as client:
        for method, url, body in REQUESTS:
            response = client.request(method, url, json=body)
            answer = response.json()
            if url.startswith("/models"):  # only the models this file registers
                answer = [m for m in answer if m["shortName"].startswith("golden")]
            out["routes"].append(
                {"request": [method, url, body], "status": response.status_code, "body": answer}
            )
    return _normalise(out, str(root))


if __name__ == "__main__":
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("NEURONS_HOME", tempfile.mkdtemp(prefix="neurons-home-"))
    with tempfile.TemporaryDirectory() as tmp:
        result = answers(Path(tmp))
    GOLDEN.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
