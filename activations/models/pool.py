"""Loaded models, one ModelRunner per registered model, created on first use."""

from __future__ import annotations

import threading

from activations.models.live import ModelRunner
from registry import get_model


class ModelPool:
    """Every user of a model (live requests, example text) shares its one runner."""

    def __init__(self, device: str = "cpu", max_tokens: int = 1024):
        self.device = device
        self.max_tokens = max_tokens
        self._runners: dict[str, ModelRunner] = {}
        self._lock = threading.Lock()

    def get(self, short_name: str) -> ModelRunner:
        metadata = get_model(short_name)  # raises UnknownModelError listing the models
        with self._lock:
            runner = self._runners.get(short_name)
            if runner is None:
                runner = ModelRunner(metadata, self.device, self.max_tokens)
                self._runners[short_name] = runner
            return runner

    def loaded(self) -> list[str]:
        with self._lock:
            return [name for name, runner in self._runners.items() if runner.is_loaded]
