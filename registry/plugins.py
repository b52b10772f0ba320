"""Users' own registrations: Python modules that register on import, named on the command line
(--register), in $NEURONS_REGISTER, or given as a file path (./my_models.py)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

REGISTER_ENV = "NEURONS_REGISTER"


class PluginError(ImportError):
    """A register module could not be loaded; the message says why and what to do."""


def modules_from_env() -> list[str]:
    """$NEURONS_REGISTER: module names or files, separated by commas or path separators."""
    raw = os.environ.get(REGISTER_ENV, "")
    return [m.strip() for m in raw.replace(os.pathsep, ",").split(",") if m.strip()]


def _is_file(name: str) -> bool:
    return name.endswith(".py") or os.sep in name or "/" in name


def _import(name: str) -> None:
    if not _is_file(name):
        importlib.import_module(name)
        return
    path = Path(name).expanduser().resolve()
    if not path.is_file():
        raise PluginError(f"register file {name!r} does not exist")
    module_name = f"neurons_register_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"register file {name!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise


def _explain(name: str, error: BaseException) -> str:
    if isinstance(error, ModuleNotFoundError):
        missing = error.name or ""
        if missing and missing != name and not name.startswith(missing + "."):
            return (
                f"register module {name!r} needs the package {missing!r}, which is not "
                f"installed (pip install {missing.split('.')[0]})"
            )
        return (
            f"could not import register module {name!r}: {error}. Give an importable module "
            "name (a file my_models.py in the current folder is 'my_models') or the file's "
            f"path (./my_models.py), with --register or ${REGISTER_ENV}."
        )
    if isinstance(error, SyntaxError):
        where = f"{Path(error.filename or name).name}, line {error.lineno}"
        return f"register module {name!r} has a syntax error ({where}): {error.msg}"
    return f"register module {name!r} failed: {type(error).__name__}: {error}"


def load_register_modules(names: Iterable[str] = ()) -> list[str]:
    """Import each module or file (they register on import); the current folder is importable.
    Any failure is a PluginError with one line to show."""
    loaded = []
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in [*modules_from_env(), *names]:
        if name in loaded:
            continue
        try:
            _import(name)
        except PluginError:
            raise
        except Exception as error:  # a user's module may raise anything while it loads
            raise PluginError(_explain(name, error)) from error
        loaded.append(name)
    return loaded
