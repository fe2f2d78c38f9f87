# SPDX-License-Identifier: MIT
"""Which backend: loading drivers and choosing the default one.

A driver (_swig_driver, _cffi_driver) is a module of callables taking
the C object's handle first, plus constants; the facade (_objects,
sysctl, topology, stress) sees the C library only through one.  Both
drivers offer the same names (tests/python/test_drivers.py checks it).
The entries that are the same C call on both sides, with nothing to
adapt, are not written in each driver but listed once here, by their C
name: SWIG's wrapper of C function ``percpu_X`` / ``percpu_py_X`` is
``X`` (percpu.i renames them so), cffi reaches it as ``lib.<C name>``.
"""

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

#: Constants every driver exports: driver name -> C name (percpu.i
#: exports each under the driver name with %constant).
CONSTANTS = {
    "EV_RELEASE": "PERCPU_PY_EV_RELEASE",
    "EV_CONFIRM_KILL": "PERCPU_PY_EV_CONFIRM_KILL",
    "EV_CONFIRM_SWITCH": "PERCPU_PY_EV_CONFIRM_SWITCH",
    "EV_FREED": "PERCPU_PY_EV_FREED",
    "REF_INIT_ATOMIC": "PERCPU_REF_INIT_ATOMIC",
    "REF_INIT_DEAD": "PERCPU_REF_INIT_DEAD",
    "REF_ALLOW_REINIT": "PERCPU_REF_ALLOW_REINIT",
    "LEAF_WRITABLE": "PERCPU_PY_LEAF_WRITABLE",
    "LEAF_HIDDEN": "PERCPU_PY_LEAF_HIDDEN",
    "LEAF_GAUGE": "PERCPU_PY_LEAF_GAUGE",
    "LOCALCOUNT_LIVE": "LOCALCOUNT_LIVE",
    "LOCALCOUNT_TRYDRAINING": "LOCALCOUNT_TRYDRAINING",
    "LOCALCOUNT_DRAINING": "LOCALCOUNT_DRAINING",
    "LOCALCOUNT_DRAINED": "LOCALCOUNT_DRAINED",
    "STRESS_OUTSTANDING": "PERCPU_STRESS_OUTSTANDING",
    "STRESS_READY": "PERCPU_STRESS_READY",
    "STRESS_GO": "PERCPU_STRESS_GO",
    "STRESS_FAILURES": "PERCPU_STRESS_FAILURES",
    "STRESS_SHARED": "PERCPU_STRESS_SHARED",
}

#: Module-level C functions both drivers pass through unchanged (plain
#: arguments, no status to check): the driver entry is the C name less
#: its prefix.  The stress loops release the GIL on both backends.
DIRECT_CALLS = (
    # topology, paths, diagnostics
    "percpu_nr_cpus",
    "percpu_nr_cpus_exact",
    "percpu_current_cpu",
    "percpu_rseq_thread_registered",
    "percpu_rseq_process_available",
    "percpu_fence_available",
    "percpu_fast_mode_available",
    "percpu_numa_available",
    "percpu_numa_nr_nodes",
    "percpu_numa_node_limit",
    "percpu_numa_node_of_cpu",
    "percpu_numa_memory_node_of_cpu",
    "percpu_py_live_objects",
    "percpu_py_leaked_objects",
    # pserialize(9) read sections (read_exit checks: the drivers')
    "percpu_py_read_enter",
    "percpu_py_in_read_section",
    "percpu_py_read_epoch",
    # publication of the sysctl tree (counter_sysctl_publish)
    "percpu_py_sysctl_publish",
    "percpu_py_sysctl_published",
    # test-only stress loops (percpu_stress.h)
    "percpu_stress_counter_add",
    "percpu_stress_array_add",
    "percpu_stress_counter_drain_rounds",
    "percpu_stress_localcount_cycle",
    "percpu_stress_localcount_hold",
    "percpu_stress_localcount_drain",
    "percpu_stress_ref_get_put",
    "percpu_stress_ref_tryget_put",
    "percpu_stress_rendezvous",
)


def driver_name(c_name):
    """The driver entry of C function `c_name` in DIRECT_CALLS."""
    for prefix in ("percpu_py_", "percpu_"):
        if c_name.startswith(prefix):
            return c_name[len(prefix):]
    raise ValueError(c_name)
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
