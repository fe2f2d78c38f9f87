# SPDX-License-Identifier: MIT
"""Finding the compiled extension modules.

A pip install puts them inside the package (``percpu._percpu_swig``);
Bazel builds them in //bindings, which its py_library puts on sys.path
as top-level modules (``_percpu_swig``).  Only a module that is *missing*
falls back to the second name: a module that exists but fails to load
(a missing shared library, say) reports its own error.
"""

import importlib

__all__ = ["import_extension"]


def import_extension(name):
    qualified = __package__ + "." + name
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as e:
        if e.name != qualified:
            raise
    return importlib.import_module(name)
