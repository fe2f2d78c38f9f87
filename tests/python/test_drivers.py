# SPDX-License-Identifier: MIT
"""The two drivers offer one interface, and it reaches every binding call.

What a binding call is comes from the C side, not from a list here: the
cffi module's cdef is generated from the shim's headers
(bindings/cffi_build.py), so the functions of ``lib`` are the ones
declared for the bindings.  Each must be reachable from both drivers.
"""

import inspect
import re
from types import ModuleType

import pytest

import percpu
from percpu import _drivers

# Public names a driver may have beyond the interface: cffi's raw
# ffi/lib (percpu.bench times the raw calls through them).
EXTRAS = {"swig": set(), "cffi": {"ffi", "lib"}}


def _driver(name):
    return percpu.get_backend(name).driver


def _interface(d):
    """The driver's own public entries (not what it imports)."""
    names = {}
    for n, v in vars(d).items():
        if n.startswith("_") or n in EXTRAS[d.name] or isinstance(v, ModuleType):
            continue
        mod = getattr(v, "__module__", None)
        if (inspect.isfunction(v) or inspect.isclass(v) or mod == "typing") \
                and mod != d.__name__ and "percpu_swig" not in str(mod):
            continue  # imported helper (raise_errno, PercpuError, Dict, ...)
        names[n] = v
    return names


def _positional(f):
    """(min, max) positional arguments, or None where unknown."""
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        ffi = _driver("cffi").ffi
        try:
            return (len(ffi.typeof(f).args),) * 2
        except TypeError:
            return None
    params = [p for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
              and not p.name.startswith("_")]  # cffi's _f=lib.f speed-ups
    required = [p for p in params if p.default is p.empty]
    return (len(required), len(params))


def test_drivers_offer_the_same_names():
    swig, cffi = _interface(_driver("swig")), _interface(_driver("cffi"))
    assert sorted(set(swig) - set(cffi)) == []
    assert sorted(set(cffi) - set(swig)) == []
    assert len(swig) > 80  # the whole interface, not a filtered remnant


def test_same_kinds_and_arity():
    swig, cffi = _interface(_driver("swig")), _interface(_driver("cffi"))
    unknown = []
    for n in swig:
        a, b = swig[n], cffi[n]
        assert callable(a) == callable(b), n
        if isinstance(a, int):
            assert a == b, n  # constants: the same values from the headers
        if not callable(a):
            continue
        arity_a, arity_b = _positional(a), _positional(b)
        if arity_a is None or arity_b is None:
            unknown.append(n)
            continue
        # how many arguments it takes; defaults may differ (SWIG's
        # Counter.add has the fast path's n=1, lib's C function none)
        assert arity_a[1] == arity_b[1], (n, arity_a, arity_b)
    # only SWIG's types (the constructors) have no signature
    assert [n for n in unknown if not n.endswith("_new")] == []


# A C function reached by a driver entry that is not named after it
# (SWIG side): C name -> the SWIG module attribute that calls it.
SWIG_INDIRECT = {
    "percpu_py_sysctl_len": "sysctl_read",  # inside percpu_swig_read_leaf
    "percpu_py_sysctl_list_new": "sysctl_list",
    "percpu_py_sysctl_list_free": "sysctl_list",
    "percpu_py_free": "sysctl_prometheus",  # the typemap frees with free()
    "percpu_py_unit_placement": "Counter.unit_placement",
    "percpu_slab_get_stats": "slab_stats",
    "percpu_py_counter_array_fetch_all": "CounterArray.fetch_all",
}

# SWIG's names for the shim's object prefixes (percpu.i renames).
SWIG_CLASSES = [
    ("percpu_py_counter_array_", "CounterArray"),
    ("percpu_py_counter_", "Counter"),
    ("percpu_py_ratecheck_", "RateCheck"),
    ("percpu_py_localcount_", "LocalCount"),
    ("percpu_py_ref_", "Ref"),
    ("percpu_py_pserialize_", "Pserialize"),
    ("percpu_stress_sync_", "StressSync"),
]


def _swig_path(c_name):
    if c_name in SWIG_INDIRECT:
        return SWIG_INDIRECT[c_name]
    for prefix, cls in SWIG_CLASSES:
        if c_name.startswith(prefix):
            method = c_name[len(prefix):]
            # constructor and destructor: the type itself
            return cls if method in ("new", "free", "destroy") else cls + "." + method
    return _drivers.driver_name(c_name)


def _binding_calls():
    lib = _driver("cffi").lib
    return sorted(n for n in dir(lib)
                  if callable(getattr(lib, n)) and n != "percpu_cffi_event")


def _unreachable(c_name):
    """Why C function `c_name` is not reachable from both drivers."""
    why = []
    obj = _driver("swig").module
    for part in _swig_path(c_name).split("."):
        obj = getattr(obj, part, None)
    if obj is None:
        why.append(f"SWIG does not wrap {c_name}")
    if not (re.search(r"\blib\.%s\b" % c_name, inspect.getsource(_driver("cffi")))
            or c_name in _drivers.DIRECT_CALLS):
        why.append(f"the cffi driver never calls {c_name}")
    return why


def test_every_binding_call_is_reachable_from_both():
    calls = _binding_calls()
    assert "percpu_py_ref_tryget_live" in calls and len(calls) > 60
    assert [w for c in calls for w in _unreachable(c)] == []
    # negative control: a call neither driver has is reported twice
    assert len(_unreachable("percpu_py_ref_tryget_dead")) == 2


def test_direct_calls_are_c_functions_of_both():
    lib = _driver("cffi").lib
    for c_name in _drivers.DIRECT_CALLS:
        n = _drivers.driver_name(c_name)
        assert getattr(_driver("swig"), n) is getattr(_driver("swig").module, n)
        assert getattr(_driver("cffi"), n) is getattr(lib, c_name)


def _objects(pc):
    c = pc.Counter()
    a = pc.CounterArray(2)
    rc = pc.RateCheck(10)
    lc = pc.LocalCount()
    r = pc.PercpuRef()
    psz = pc.Pserialize()
    ref = lc.acquire()
    return [c, a, rc, lc, r, psz, ref]


def test_every_method_has_a_signature_and_a_doc(pc):
    """Also the per-instance fast paths (c.add is the binding's own
    callable): inspect.signature works, the doc says something, and the
    signature is the one the class documents."""
    objs = _objects(pc)
    checked = set()
    try:
        for obj in objs:
            cls = type(obj)
            names = {n for n in dir(obj) if not n.startswith("_")}
            names |= set(getattr(obj, "_fast", ()))
            for n in sorted(names):
                f = getattr(obj, n)
                if not callable(f) or inspect.isclass(f):
                    continue
                sig = inspect.signature(f)
                assert f.__doc__ and f.__doc__.strip(), f"{cls.__name__}.{n}"
                if n in getattr(obj, "_fast", ()):
                    assert n in vars(obj), f"{n} is not a fast path here"
                if n in getattr(obj, "_fast", ()) and hasattr(cls, n):
                    declared = inspect.signature(getattr(cls, n).__get__(obj))
                    assert sig == declared, f"{cls.__name__}.{n}"
                checked.add(f"{cls.__name__}.{n}")
    finally:
        objs[-1].release()
        for obj in objs[:-1]:
            obj.close()
    for n in ("Counter.add", "LocalCount.release", "LocalCount._acquire",
              "PercpuRef.get", "PercpuRef.tryget_live", "Pserialize.perform"):
        assert any(c.endswith(n) for c in checked), n


@pytest.mark.parametrize("backend", ["swig", "cffi"])
def test_fast_paths_are_the_bindings_own(backend):
    """The fast paths stay calls into the binding: no Python frame on
    SWIG, and the doc/signature did not wrap them in one on cffi."""
    pc = percpu.get_backend(backend)
    c, r = pc.Counter(), pc.PercpuRef()
    try:
        if backend == "swig":
            assert inspect.isbuiltin(c.add) and inspect.isbuiltin(r.tryget_live)
        else:
            assert inspect.isbuiltin(r.tryget_live.func)
    finally:
        r.close()
        c.close()
