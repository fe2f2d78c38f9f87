# SPDX-License-Identifier: MIT
"""Which backend: loading drivers and choosing the default one."""

import importlib
import os
from types import ModuleType
from typing import Dict

__all__ = ["BACKENDS", "ENV_VAR", "load", "available", "default_name"]

#: Both backends, fastest first: SWIG -builtin keeps the GIL on tiny
#: calls and has no Python frame per call (docs/python.md has the numbers).
BACKENDS = ("swig", "cffi")
ENV_VAR = "PERCPU_BACKEND"

_MODULES = {"swig": "._swig_driver", "cffi": "._cffi_driver"}
_loaded: Dict[str, ModuleType] = {}


def load(name):
    """The driver of backend `name` ("swig" or "cffi"), imported once."""
    if name not in _MODULES:
        raise ValueError(f"unknown percpu backend {name!r}; expected one of "
                         f"{', '.join(BACKENDS)}")
    driver = _loaded.get(name)
    if driver is None:
        driver = importlib.import_module(_MODULES[name], __package__)
        _loaded[name] = driver
    return driver


def available():
    """The backends that import here, fastest first."""
    names = []
    for name in BACKENDS:
        try:
            load(name)
        except ImportError:
            continue
        names.append(name)
    return names


def default_name():
    """$PERCPU_BACKEND if set (it must then import), else the fastest
    backend that imports."""
    wanted = os.environ.get(ENV_VAR, "").strip().lower()
    if wanted:
        load(wanted)  # ValueError / ImportError say why it cannot be used
        return wanted
    errors = []
    for name in BACKENDS:
        try:
            load(name)
            return name
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise ImportError("no percpu backend could be imported (" +
                      "; ".join(errors) + ")")


_default = None


def default():
    """The default backend's driver (chosen once, at first use)."""
    global _default
    if _default is None:
        _default = load(default_name())
    return _default


def resolve(name):
    """The driver of `name`, or the default one for None."""
    return default() if name is None else load(name)
