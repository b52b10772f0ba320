"""Users' own registrations: Python modules imported by name, from flags or an env variable."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

REGISTER_ENV = "NEURONS_REGISTER"


class PluginError(ImportError):
    """A --register module could not be imported."""


def modules_from_env() -> list[str]:
    """$NEURONS_REGISTER: module names separated by commas or path separators."""
    raw = os.environ.get(REGISTER_ENV, "")
    return [m.strip() for m in raw.replace(os.pathsep, ",").split(",") if m.strip()]


def load_register_modules(names: Iterable[str] = ()) -> list[str]:
    """Import each module (they register on import); the current folder is importable."""
    loaded = []
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in [*modules_from_env(), *names]:
        if name in loaded:
            continue
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise PluginError(
                f"could not import register module {name!r}: {error}. "
                "Give an importable module name (a file my_models.py in the current folder "
                "is 'my_models'), with --register or $" + REGISTER_ENV + "."
            ) from error
        except (ValueError, LookupError) as error:
            raise PluginError(f"register module {name!r} failed: {error}") from error
        loaded.append(name)
    return loaded
