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

from ._errors import PercpuError
from ._ext import import_extension

_m = import_extension("_percpu_swig")
_m.set_error_class(PercpuError)

name = "swig"
module = _m

EV_RELEASE = _m.EV_RELEASE
EV_CONFIRM_KILL = _m.EV_CONFIRM_KILL
EV_CONFIRM_SWITCH = _m.EV_CONFIRM_SWITCH
EV_FREED = _m.EV_FREED
REF_INIT_ATOMIC = _m.REF_INIT_ATOMIC
REF_INIT_DEAD = _m.REF_INIT_DEAD
REF_ALLOW_REINIT = _m.REF_ALLOW_REINIT
LEAF_WRITABLE = _m.LEAF_WRITABLE
LEAF_HIDDEN = _m.LEAF_HIDDEN
LOCALCOUNT_LIVE = _m.LOCALCOUNT_LIVE
LOCALCOUNT_TRYDRAINING = _m.LOCALCOUNT_TRYDRAINING
LOCALCOUNT_DRAINING = _m.LOCALCOUNT_DRAINING
LOCALCOUNT_DRAINED = _m.LOCALCOUNT_DRAINED
STRESS_OUTSTANDING = _m.STRESS_OUTSTANDING
STRESS_READY = _m.STRESS_READY
STRESS_GO = _m.STRESS_GO
STRESS_FAILURES = _m.STRESS_FAILURES
STRESS_SHARED = _m.STRESS_SHARED

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
sysctl_list = _m.sysctl_list
sysctl_describe = _m.sysctl_describe
sysctl_prometheus = _m.sysctl_prometheus

# ---- topology, paths, diagnostics ----
nr_cpus = _m.nr_cpus
nr_cpus_exact = _m.nr_cpus_exact
current_cpu = _m.current_cpu
rseq_thread_registered = _m.rseq_thread_registered
rseq_process_available = _m.rseq_process_available
fence_available = _m.fence_available
fast_mode_available = _m.fast_mode_available
numa_available = _m.numa_available
numa_nr_nodes = _m.numa_nr_nodes
numa_node_limit = _m.numa_node_limit
numa_node_of_cpu = _m.numa_node_of_cpu
numa_memory_node_of_cpu = _m.numa_memory_node_of_cpu
slab_stats = _m.slab_stats
live_objects = _m.live_objects
leaked_objects = _m.leaked_objects

# ---- test-only stress loops (GIL released) ----
stress_sync_new = _m.StressSync
stress_sync_get = _m.StressSync.get
stress_sync_set = _m.StressSync.set
stress_counter_add = _m.stress_counter_add
stress_array_add = _m.stress_array_add
stress_counter_drain_rounds = _m.stress_counter_drain_rounds
stress_localcount_cycle = _m.stress_localcount_cycle
stress_localcount_hold = _m.stress_localcount_hold
stress_localcount_drain = _m.stress_localcount_drain
stress_ref_get_put = _m.stress_ref_get_put
stress_ref_tryget_put = _m.stress_ref_tryget_put
stress_rendezvous = _m.stress_rendezvous
