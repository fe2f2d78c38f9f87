# SPDX-License-Identifier: MIT
"""The SWIG backend, seen through the driver interface the facade uses.

A driver is a namespace of callables that take the C object's handle as
their first argument.  Here almost every entry is a method descriptor of
a SWIG ``-builtin`` type, i.e. a C function: calling ``counter_fetch(h)``
costs no Python frame.  ``bind_*`` return the per-instance fast paths
(bound builtin methods) the facade stores on its objects.

GIL (see percpu.i): every call keeps the GIL except drain, the
percpu_ref mode switches and destructor, the Prometheus dump and the
stress loops, which release it.  Errors arrive already raised as
PercpuError (registered below) or IndexError.
"""

from ._drivers import CONSTANTS, DIRECT_CALLS, driver_name
from ._errors import PercpuError
from ._ext import import_extension

_m = import_extension("_percpu_swig")
_m.set_error_class(PercpuError)

name = "swig"
module = _m

for _c in CONSTANTS:
    globals()[_c] = getattr(_m, _c)
for _c in DIRECT_CALLS:
    globals()[driver_name(_c)] = getattr(_m, driver_name(_c))
del _c

# ---- Counter ----
counter_new = _m.Counter
counter_add = _m.Counter.add
counter_fetch = _m.Counter.fetch
counter_fetch_and_zero = _m.Counter.fetch_and_zero
counter_read_cpu = _m.Counter.read_cpu
counter_register = _m.Counter.register
counter_unit_placement = _m.Counter.unit_placement


def bind_counter_add(h):
    return h.add


# ---- CounterArray ----
array_new = _m.CounterArray
array_add = _m.CounterArray.add
array_fetch = _m.CounterArray.fetch


def array_fetch_all(h, n):
    return h.fetch_all()


array_zero = _m.CounterArray.zero
array_register = _m.CounterArray.register

# ---- RateCheck ----
ratecheck_new = _m.RateCheck
ratecheck_check = _m.RateCheck.check
ratecheck_count = _m.RateCheck.count

# ---- LocalCount ----
lc_new = _m.LocalCount
lc_acquire = _m.LocalCount.acquire
lc_release = _m.LocalCount.release
lc_drain = _m.LocalCount.drain
lc_trydrain = _m.LocalCount.trydrain
lc_state = _m.LocalCount.state
lc_refcnt = _m.LocalCount.refcnt


def bind_lc(h):
    """(acquire, release) of one localcount."""
    return h.acquire, h.release


# ---- pserialize(9) ----
psz_new = _m.Pserialize
psz_perform = _m.Pserialize.perform
read_exit = _m.read_exit

# ---- PercpuRef ----
ref_new = _m.Ref  # (flags, dispatcher)
ref_kill = _m.Ref.kill
ref_switch_to_atomic = _m.Ref.switch_to_atomic
ref_switch_to_atomic_sync = _m.Ref.switch_to_atomic_sync
ref_switch_to_percpu = _m.Ref.switch_to_percpu
ref_resurrect = _m.Ref.resurrect
ref_reinit = _m.Ref.reinit
ref_is_zero = _m.Ref.is_zero
ref_is_dying = _m.Ref.is_dying
ref_mode = _m.Ref.mode
ref_releases = _m.Ref.releases


def bind_ref(h):
    """(get, put, tryget, tryget_live) of one ref."""
    return h.get, h.put, h.tryget, h.tryget_live


# ---- sysctl tree ----
sysctl_read = _m.sysctl_read
sysctl_read_and_zero = _m.sysctl_read_and_zero
sysctl_zero = _m.sysctl_zero
sysctl_remove = _m.sysctl_remove
sysctl_last_error = _m.sysctl_last_error
sysctl_list = _m.sysctl_list
sysctl_describe = _m.sysctl_describe
sysctl_prometheus = _m.sysctl_prometheus

# ---- other processes' published counters ----
stat_read_json = _m.stat_read_json
stat_last_error = _m.stat_last_error

# ---- topology, paths, diagnostics (the rest: _drivers.DIRECT_CALLS) ----
slab_stats = _m.slab_stats

# ---- test-only stress loops (GIL released) ----
stress_sync_new = _m.StressSync
stress_sync_get = _m.StressSync.get
stress_sync_set = _m.StressSync.set
# the loops: _drivers.DIRECT_CALLS
