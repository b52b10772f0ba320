"""Where this project keeps what it makes: converted models and the default datasets."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "NEURONS_HOME"


def neurons_home() -> Path:
    """$NEURONS_HOME, else ~/.cache/neurons."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "neurons")


def default_dataset_path(model_short_name: str, corpus: str) -> Path:
    return neurons_home() / "datasets" / f"{model_short_name}-{corpus}.parquet"


def model_cache_dir() -> Path:
    return neurons_home() / "models"
