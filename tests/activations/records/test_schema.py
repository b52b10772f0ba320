"""The record's columns follow the published OLMo-7B-0424 dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from activations.records.schema import GLU_LAYOUT
from registry.vocabulary import DST_TO_HOOK

CARD_COLUMNS = Path(__file__).parents[2] / "fixtures" / "olmo_card_columns.json"


def test_the_vocabulary_gives_the_published_cards_columns_in_order():
    """The card's features, copied from the published dataset: every column name, dtype and
    position follows from the vocabulary's hooks, quadrants and card order."""
    card = json.loads(CARD_COLUMNS.read_text())["columns"]
    types = {pa.int64(): "int64", pa.float32(): "float32"}
    ours = [
        [f.name, f"list<{types[f.type.value_type]}>" if pa.types.is_list(f.type) else types[f.type]]
        for f in GLU_LAYOUT.card_fields()
    ]
    assert ours == card
    hooks = {name.split("_", 2)[2].rsplit("_", 1)[0] for name, _ in card[2:] if "_mean" in name}
    assert hooks == set(DST_TO_HOOK.values())
