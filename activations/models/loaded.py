"""A registered model, loaded lazily on first use and kept: its weights, its tokenizer (one call
at a time) and its MLP sites. A load that fails is remembered for a while and said again without
trying, so that every request does not wait for the same failure."""

from __future__ import annotations

import threading
import time

from activations.io.errors import UpstreamError
from activations.models.adapters import MlpSite, find_mlp_sites
from activations.models.loading import load_model
from activations.models.tokens import Tokens
from registry.metadata import ModelMetadata


class ModelUnavailableError(UpstreamError):
    """The model could not be loaded (weights missing, hub unreachable); said for a while without
    trying again, so that every request does not wait for the same failure."""


class _LockedTokenizer:
    """The model's tokenizer, one call at a time: a fast tokenizer changes its own truncation
    and padding state on each call, so concurrent calls with other settings fail ("Already
    borrowed")."""

    def __init__(self, tokenizer, lock: threading.Lock) -> None:
        self._tokenizer = tokenizer
        self._lock = lock

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer(*args, **kwargs)

    def decode(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer.decode(*args, **kwargs)

    def encode(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer.encode(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._tokenizer)

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)


class LoadedModel:
    """One model's weights, tokenizer and sites, loaded on first use."""

    RETRY_LOAD_AFTER_S = 60.0

    def __init__(self, metadata: ModelMetadata, device: str = "cpu") -> None:
        self.metadata = metadata
        self.device = device
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self._tokens: Tokens | None = None
        self._sites: list[MlpSite] = []
        self._failed: tuple[str, float] | None = None  # (why, when)

    def _ensure_loaded(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            name = self.metadata.short_name
            if self._failed is not None:
                why, when = self._failed
                wait = self.RETRY_LOAD_AFTER_S - (time.monotonic() - when)
                if wait > 0:
                    ago = time.monotonic() - when
                    raise ModelUnavailableError(
                        f"model {name!r} could not be loaded: {why} (tried {ago:.0f} s ago; "
                        f"tried again in {wait:.0f} s)"
                    )
            try:
                model, tokenizer = load_model(self.metadata, self.device)
            except (OSError, ValueError, ImportError, RuntimeError) as error:
                why = f"{type(error).__name__}: {error}".splitlines()[0][:500]
                self._failed = (why, time.monotonic())
                raise ModelUnavailableError(f"model {name!r} could not be loaded: {why}") from None
            self._failed = None
            self._sites = find_mlp_sites(model)
            self._model = model
            self._tokenizer = _LockedTokenizer(tokenizer, self._tokenizer_lock)
            self._tokens = Tokens(self._tokenizer, self.metadata.bos_token)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def tokenizer(self):
        self._ensure_loaded()
        return self._tokenizer

    @property
    def tokens(self) -> Tokens:
        """The tokenizer with the model's BOS rule: how every text here becomes ids."""
        self._ensure_loaded()
        return self._tokens

    @property
    def model(self):
        """The loaded model (loads it); for reading its weights, not for forward passes,
        which are the worker's."""
        self._ensure_loaded()
        return self._model

    @property
    def sites(self) -> list[MlpSite]:
        self._ensure_loaded()
        return self._sites

    @property
    def n_layers(self) -> int:
        self._ensure_loaded()
        return len(self._sites)

    @property
    def n_neurons(self) -> int:
        self._ensure_loaded()
        return self._sites[0].n_neurons

    @property
    def is_glu(self) -> bool:
        self._ensure_loaded()
        return self._sites[0].is_glu
