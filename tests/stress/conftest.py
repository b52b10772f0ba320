"""A tiny OLMo, a 1,200-document corpus and a register module, for the stress tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny import make_tiny_model, random_documents, write_jsonl


@pytest.fixture
def tiny_setup(tmp_path) -> Path:
    model = make_tiny_model("olmo", tmp_path / "model")
    write_jsonl(tmp_path / "docs.jsonl", random_documents(1200, seed=9, max_words=40))
    (tmp_path / "tiny_reg.py").write_text(
        "from registry import register_model, register_neuron_dataset_metadata\n"
        f"register_model('tiny-olmo', {str(model)!r}, user_visible_name='Tiny OLMo')\n"
        "register_neuron_dataset_metadata('tiny-olmo', 'mlp_post_act', 'Tiny OLMo',\n"
        f"    {str(tmp_path / 'whole.parquet')!r}, format='glu_parquet', model='tiny-olmo',\n"
        f"    corpus={str(tmp_path / 'docs.jsonl')!r})\n"
    )
    return tmp_path
