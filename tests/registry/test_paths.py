"""The one path parser: schemes, local files (file:// URLs included) and joins."""

from __future__ import annotations

import pytest

from registry.errors import UnsupportedPathError
from registry.paths import join_path, local_path, validate_path

SEED = "https://openaipublic.blob.core.windows.net/neuron-explainer/data/collated-activations"


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (SEED, f"{SEED}/3/7.json"),
        (SEED + "/", f"{SEED}/3/7.json"),
        ("https://host", "https://host/3/7.json"),
        ("https://host/c?sv=1&sig=x", "https://host/c/3/7.json?sv=1&sig=x"),
        ("az://openaipublic/neuron-explainer/", "az://openaipublic/neuron-explainer/3/7.json"),
        ("gs://bucket/data", "gs://bucket/data/3/7.json"),
        ("hf://datasets/org/name/", "hf://datasets/org/name/3/7.json"),
        ("file:///tmp/data/", "file:///tmp/data/3/7.json"),
        ("/tmp/data/", "/tmp/data/3/7.json"),
        ("/tmp/data", "/tmp/data/3/7.json"),
        ("relative/dir", "relative/dir/3/7.json"),
    ],
)
def test_join_path(base, expected):
    assert join_path(base, "3", "7.json") == expected
    assert join_path(base, "/3/", "/7.json") == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/x.parquet", "/data/x.parquet"),
        ("relative/x.parquet", "relative/x.parquet"),
        ("file:///data/x.parquet", "/data/x.parquet"),
        ("file://localhost/data/x.parquet", "/data/x.parquet"),
        ("file:///data/with%20space/x.parquet", "/data/with space/x.parquet"),
        ("https://host/x.parquet", None),
        ("hf://datasets/o/n", None),
    ],
)
def test_local_path(path, expected):
    assert local_path(path) == expected


def test_file_url_of_another_host_is_refused_at_registration():
    with pytest.raises(UnsupportedPathError, match="names host 'server'"):
        local_path("file://server/data/x.parquet")
    with pytest.raises(UnsupportedPathError, match="names host 'server'"):
        validate_path("file://server/data/x.parquet")
