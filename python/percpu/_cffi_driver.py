# SPDX-License-Identifier: MIT
"""The CFFI backend (out-of-line API mode), behind the driver interface.

Same entries, same semantics as _swig_driver: functions taking the C
object's handle first, returning Python values and raising PercpuError
or IndexError.  Handles are cdata pointers owned through ``ffi.gc``, so
the C object is freed when the last Python reference to the handle goes
-- which is also how a call in flight on another thread keeps it alive
past the facade's close().

GIL: cffi releases it around *every* C call and cannot be told not to;
that is why the tiny calls cost more here (docs/python.md).  Callbacks
come back through the ``extern "Python"`` function registered below,
which takes the GIL itself and so works from any thread, including the
library's switch worker.

Strings: cffi wants bytes for ``char *``; the facade passes str, which is
encoded here (UTF-8).
"""

import functools
import inspect
import operator
from typing import Any, Dict

from ._drivers import CONSTANTS, DIRECT_CALLS, driver_name
from ._errors import raise_errno
from ._ext import import_extension

_mod = import_extension("_percpu_cffi")
ffi = _mod.ffi
lib = _mod.lib

name = "cffi"
module = _mod

for _c, _cname in CONSTANTS.items():
    globals()[_c] = getattr(lib, _cname)
for _cname in DIRECT_CALLS:
    globals()[driver_name(_cname)] = getattr(lib, _cname)
del _c, _cname

_EBUSY = lib.EBUSY
_ENOMEM = lib.ENOMEM
_index = operator.index


def _check(rc):
    if rc:
        raise_errno(rc)


def _str(s):
    return ffi.NULL if s is None else s.encode()


def _new(ctype, create, destroy, *args):
    p = ffi.new(ctype + " **")
    _check(create(p, *args))
    return ffi.gc(p[0], destroy)


# ---- Counter ----
def counter_new():
    return _new("struct percpu_py_counter", lib.percpu_py_counter_new,
                lib.percpu_py_counter_free)


counter_add = lib.percpu_py_counter_add
counter_fetch = lib.percpu_py_counter_fetch
counter_fetch_and_zero = lib.percpu_py_counter_fetch_and_zero


def counter_read_cpu(h, cpu):
    out = ffi.new("int64_t *")
    _check(lib.percpu_py_counter_read_cpu(h, cpu, out))
    return out[0]


def _strv(strs):
    """A NULL-terminated char *[] of `strs` (None: NULL); the cdata
    keeps the strings alive through the ``keep`` list it is returned with."""
    if strs is None:
        return ffi.NULL, None
    keep = [ffi.new("char[]", s.encode()) for s in strs]
    return ffi.new("char *[]", keep + [ffi.NULL]), keep


def counter_register(h, name, leaf_flags, descr, const_labels):
    labels, _keep = _strv(const_labels)
    _check(lib.percpu_py_counter_register(h, _str(name), leaf_flags, _str(descr),
                                          labels))


def counter_unit_placement(h, cpu):
    pl = ffi.new("struct percpu_unit_placement *")
    _check(lib.percpu_py_unit_placement(h, cpu, pl))
    return (pl.wanted_node, pl.bind_error, pl.actual_node, pl.pages,
            pl.pages_on_wanted, pl.pages_unknown)


# The per-instance fast paths (bind_*) get their docstrings here, in the
# def (a constant: nothing per call), and a signature: the closures have
# one; a functools.partial of a C function gets one set on it, once per
# object (a partial stays the fastest way to bind the handle).
_NO_ARGS = inspect.Signature()


def _bind_noargs(f, h, doc):
    """f(h) as a callable of no arguments, with a docstring."""
    bound = functools.partial(f, h)
    bound.__doc__ = doc
    bound.__signature__ = _NO_ARGS
    return bound


def bind_counter_add(h, _f=lib.percpu_py_counter_add):
    def add(n=1, /):
        """Add n (default 1) on the calling CPU.  Never blocks."""
        _f(h, _index(n))
    return add


# ---- CounterArray ----
def array_new(n):
    return _new("struct percpu_py_counter_array", lib.percpu_py_counter_array_new,
                lib.percpu_py_counter_array_free, n)


def array_add(h, i, n=1):
    _check(lib.percpu_py_counter_array_add(h, i, _index(n)))


def array_fetch(h, i):
    out = ffi.new("uint64_t *")
    _check(lib.percpu_py_counter_array_fetch(h, i, out))
    return out[0]


def array_fetch_all(h, n):
    out = ffi.new("uint64_t[]", n)
    lib.percpu_py_counter_array_fetch_all(h, out)
    return list(out)


array_zero = lib.percpu_py_counter_array_zero


def array_register(h, name, leaf_flags, descr, const_labels, elem_label,
                   elem_values):
    labels, _keep = _strv(const_labels)
    values, _keep2 = _strv(elem_values)
    _check(lib.percpu_py_counter_array_register(h, _str(name), leaf_flags,
                                                _str(descr), labels,
                                                _str(elem_label), values))


# ---- RateCheck ----
def ratecheck_new():
    return _new("struct percpu_py_ratecheck", lib.percpu_py_ratecheck_new,
                lib.percpu_py_ratecheck_free)


ratecheck_check = lib.percpu_py_ratecheck_check
ratecheck_count = lib.percpu_py_ratecheck_count


# ---- LocalCount ----
def lc_new():
    return _new("struct percpu_py_localcount", lib.percpu_py_localcount_new,
                lib.percpu_py_localcount_free)


def lc_acquire(h):
    _check(lib.percpu_py_localcount_acquire(h))


lc_release = lib.percpu_py_localcount_release


def lc_drain(h):
    _check(lib.percpu_py_localcount_drain(h))


def lc_trydrain(h):
    rc = lib.percpu_py_localcount_trydrain(h)
    if rc == -_EBUSY:
        return False
    _check(rc)
    return True


lc_state = lib.percpu_py_localcount_state
lc_refcnt = lib.percpu_py_localcount_refcnt


def bind_lc(h, _acq=lib.percpu_py_localcount_acquire):
    def acquire():
        """Take a reference (PercpuError EINVAL once a drain began or
        succeeded)."""
        rc = _acq(h)
        if rc:
            raise_errno(rc)
    return acquire, _bind_noargs(
        lib.percpu_py_localcount_release, h,
        "Drop a reference (on any thread).  Takes the drain's lock briefly "
        "during a drain; otherwise never blocks.")


# ---- pserialize(9) ----
def psz_new():
    return _new("struct percpu_py_pserialize", lib.percpu_py_pserialize_new,
                lib.percpu_py_pserialize_free)


def psz_perform(h):
    _check(lib.percpu_py_pserialize_perform(h))


def read_exit(s):
    _check(lib.percpu_py_read_exit(s))


# ---- PercpuRef ----
# Dispatchers C may still call back, kept alive here until their FREED
# event: C holds only a raw pointer (ffi.new_handle), invisible to the GC.
_keepalive: Dict[Any, Any] = {}


@ffi.def_extern(name="percpu_cffi_event")
def _event(ctx, event):
    dispatcher = ffi.from_handle(ctx)
    try:
        dispatcher(event)
    finally:
        if event == lib.PERCPU_PY_EV_FREED:
            _keepalive.pop(dispatcher, None)


def ref_new(flags, dispatcher):
    if not callable(dispatcher):
        raise TypeError("dispatcher must be callable")
    handle = ffi.new_handle(dispatcher)
    p = ffi.new("struct percpu_py_ref **")
    _keepalive[dispatcher] = handle
    rc = lib.percpu_py_ref_new(p, flags, lib.percpu_cffi_event, handle)
    if rc:
        _keepalive.pop(dispatcher, None)
        raise_errno(rc)
    return ffi.gc(p[0], lib.percpu_py_ref_destroy)


def ref_kill(h, confirm=0):
    _check(lib.percpu_py_ref_kill(h, confirm))


def ref_switch_to_atomic(h, confirm=0):
    _check(lib.percpu_py_ref_switch_to_atomic(h, confirm))


def ref_switch_to_atomic_sync(h):
    _check(lib.percpu_py_ref_switch_to_atomic_sync(h))


def ref_switch_to_percpu(h):
    _check(lib.percpu_py_ref_switch_to_percpu(h))


def ref_resurrect(h):
    _check(lib.percpu_py_ref_resurrect(h))


def ref_reinit(h):
    _check(lib.percpu_py_ref_reinit(h))


ref_is_zero = lib.percpu_py_ref_is_zero
ref_is_dying = lib.percpu_py_ref_is_dying
ref_mode = lib.percpu_py_ref_mode
ref_releases = lib.percpu_py_ref_releases


def bind_ref(h, _get=lib.percpu_py_ref_get, _put=lib.percpu_py_ref_put,
             _tryget=lib.percpu_py_ref_tryget):
    def get(n=1, /):
        """Take n references; the caller holds one already.  Never
        blocks.  PercpuError(EINVAL) on a ref whose count reached zero."""
        rc = _get(h, _index(n))
        if rc:
            raise_errno(rc)

    def put(n=1, /):
        """Drop n references; may run the release callback on this
        thread."""
        rc = _put(h, _index(n))
        if rc:
            raise_errno(rc)

    def tryget(n=1, /):
        """Take n references unless the count is zero; True if taken."""
        return _tryget(h, _index(n))

    return get, put, tryget, _bind_noargs(
        lib.percpu_py_ref_tryget_live, h,
        "Take a reference unless the ref is dying or zero; True if taken.")


# ---- sysctl tree ----
def sysctl_read(name):
    return _read_leaf(name, lib.percpu_py_sysctl_read)


def sysctl_read_and_zero(name):
    return _read_leaf(name, lib.percpu_py_sysctl_read_and_zero)


def _read_leaf(name, read):
    key = _str(name)
    while True:
        n = lib.percpu_py_sysctl_len(key)
        _check(min(n, 0))
        values = ffi.new("uint64_t[]", n)
        got = ffi.new("size_t *")
        rc = read(key, values, n, got)
        if rc == -_ENOMEM:  # replaced by a longer leaf meanwhile
            continue
        _check(rc)
        return list(values[0:got[0]])


def sysctl_zero(name):
    _check(lib.percpu_py_sysctl_zero(_str(name)))


def sysctl_remove(name):
    _check(lib.percpu_py_sysctl_remove(_str(name)))


def sysctl_last_error():
    return ffi.string(lib.percpu_py_sysctl_last_error()).decode(errors="replace")


def _entry(e):
    return (ffi.string(e.name).decode(), ffi.string(e.descr).decode(),
            e.access, e.len, bool(e.dynamic))


def sysctl_list(prefix):
    p = ffi.new("struct percpu_py_sysctl_list **")
    _check(lib.percpu_py_sysctl_list_new(p, _str(prefix)))
    lst = p[0]
    try:
        return [_entry(lst.entries[i]) for i in range(lst.n)]
    finally:
        lib.percpu_py_sysctl_list_free(lst)


def sysctl_describe(name):
    e = ffi.new("struct percpu_py_sysctl_entry *")
    _check(lib.percpu_py_sysctl_describe(_str(name), e))
    try:
        return _entry(e)
    finally:
        lib.percpu_py_free(e.name)
        lib.percpu_py_free(e.descr)


def _take_text(text):
    """The str of a malloc()ed C string a shim call returned (freed here),
    or PercpuError for its NULL (errno set by the call)."""
    if text == ffi.NULL:
        raise_errno(-(ffi.errno or _ENOMEM))
    try:
        return ffi.string(text).decode()
    finally:
        lib.percpu_py_free(text)


def stat_read_json(pid):
    return _take_text(lib.percpu_py_stat_read_json(pid))


def stat_last_error():
    return ffi.string(lib.percpu_py_stat_last_error()).decode("utf-8", "replace")


def sysctl_prometheus(prefix):
    return _take_text(lib.percpu_py_sysctl_prometheus(_str(prefix)))


# ---- topology, paths, diagnostics (the rest: _drivers.DIRECT_CALLS) ----


def slab_stats():
    s = ffi.new("struct percpu_slab_stats *")
    lib.percpu_slab_get_stats(s)
    return (s.chunks, s.objects, s.bytes_in_use, s.bytes_capacity,
            s.units_unplaced)


# ---- test-only stress loops (GIL released, as every cffi call) ----
def stress_sync_new():
    return _new("struct percpu_stress_sync", lib.percpu_stress_sync_new,
                lib.percpu_stress_sync_free)


stress_sync_get = lib.percpu_stress_sync_get
stress_sync_set = lib.percpu_stress_sync_set
# the loops: _drivers.DIRECT_CALLS
