# SPDX-License-Identifier: MIT
"""Where the per-CPU copies are: possible CPUs, nodes, slab placement,
and which path (rseq or fallback) the library takes here.

Every per-CPU object has one copy per *possible* CPU -- the CPUs the
kernel could ever bring online, not the online ones -- so indexes run
over ``range(possible_cpus())``.  Each CPU's copies live in its *unit*
of a slab chunk, placed (best effort) on the CPU's NUMA node;
``unit_placement()`` asks the kernel where a unit's pages really are.

The functions of this module use the default backend;
``percpu.get_backend(name).topology`` has the same on another.

A `cpu` argument is an unsigned int (0..2**32-1; OverflowError outside);
one the library does not know (>= possible_cpus(), or offline for the
NUMA queries) is PercpuError(EINVAL).  A Topology namespace holds no
state of its own: ``copy`` returns the same namespace, and a pickled one
loads as the same backend's namespace.
"""

import errno
import operator
from collections import namedtuple

from . import _drivers
from ._namespace import BackendNamespace
from ._errors import PercpuError, raise_errno, with_context

__all__ = [
    "UnitPlacement",
    "SlabStats",
    "Topology",
    "possible_cpus",
    "possible_cpus_exact",
    "current_cpu",
    "numa_available",
    "nr_nodes",
    "node_limit",
    "node_of_cpu",
    "memory_node_of_cpu",
    "cpu_nodes",
    "unit_placement",
    "unit_placements",
    "slab_stats",
    "rseq_available",
    "rseq_registered",
    "fence_available",
    "fast_mode_available",
    "path",
]

#: Where one CPU's unit of a slab chunk lives.  wanted_node: the node
#: asked for (the CPU's, or the nearest node with memory); bind_error: 0
#: or the -errno the placement request got (-EPERM in containers, -ENOSYS
#: without NUMA); actual_node: the node of all its primary pages, -1 if
#: they differ or none is populated; then page counts.
UnitPlacement = namedtuple(
    "UnitPlacement",
    "cpu wanted_node bind_error actual_node pages pages_on_wanted pages_unknown")

#: The slab allocator's totals (per CPU for the byte counts).
SlabStats = namedtuple(
    "SlabStats", "chunks objects bytes_in_use bytes_capacity units_unplaced")


UINT_MAX = (1 << 32) - 1


class Topology(BackendNamespace):
    """Topology queries through one backend's driver."""

    _attribute = "topology"

    def _cpu(self, op, cpu):
        cpu = operator.index(cpu)
        if not 0 <= cpu <= UINT_MAX:
            raise OverflowError(f"topology.{op}({cpu}): cpu is outside 0..2**32-1 "
                                f"(an unsigned int); possible CPUs are "
                                f"0..{self._d.nr_cpus() - 1}")
        return cpu

    def _no_cpu(self, op, cpu):
        return (f"topology.{op}({cpu})",
                f"no such CPU known (possible CPUs are 0..{self._d.nr_cpus() - 1})")

    def possible_cpus(self):
        """Number of possible CPUs: highest possible CPU id + 1."""
        return self._d.nr_cpus()

    def possible_cpus_exact(self):
        """False when the kernel's possible-CPU list was unreadable and
        the library provides for its maximum (4096) instead."""
        return self._d.nr_cpus_exact()

    def current_cpu(self):
        """The CPU this thread runs on now (a hint: it may migrate)."""
        return self._d.current_cpu()

    def numa_available(self):
        return self._d.numa_available()

    def nr_nodes(self):
        """Configured NUMA nodes (with memory); 1 without NUMA."""
        return self._d.numa_nr_nodes()

    def node_limit(self):
        """Highest node id + 1 (ids can be sparse)."""
        return self._d.numa_node_limit()

    def node_of_cpu(self, cpu):
        """The NUMA node of `cpu` (0 without NUMA).  PercpuError(EINVAL)
        for a CPU the topology does not know (e.g. offline)."""
        cpu = self._cpu("node_of_cpu", cpu)
        node = self._d.numa_node_of_cpu(cpu)
        if node < 0:
            raise_errno(node, *self._no_cpu("node_of_cpu", cpu))
        return node

    def memory_node_of_cpu(self, cpu):
        """The node `cpu`'s per-CPU memory should come from: its own, or
        the nearest node with memory when its own has none."""
        cpu = self._cpu("memory_node_of_cpu", cpu)
        node = self._d.numa_memory_node_of_cpu(cpu)
        if node < 0:
            raise_errno(node, *self._no_cpu("memory_node_of_cpu", cpu))
        return node

    def cpu_nodes(self):
        """The node of each possible CPU (None where unknown)."""
        nodes = []
        for cpu in range(self.possible_cpus()):
            node = self._d.numa_node_of_cpu(cpu)
            nodes.append(node if node >= 0 else None)
        return nodes

    def _probe(self, obj):
        """A counter whose chunk to look at: obj's, or a fresh one."""
        from ._objects import Counter  # late: _objects needs no topology
        if obj is None:
            return Counter(backend=self._d.name), True
        if not isinstance(obj, Counter):
            raise TypeError(f"topology: unit placement is reported for a "
                            f"Counter, not {type(obj).__name__}")
        return obj, False  # its own driver: the slab is shared anyway

    def unit_placement(self, cpu, obj=None):
        """Where CPU `cpu`'s unit of the chunk holding `obj` (a Counter;
        default: a fresh counter) lives, asked of the kernel now."""
        cpu = self._cpu("unit_placement", cpu)
        counter, temporary = self._probe(obj)
        try:
            t = counter._d.counter_unit_placement(counter._live("unit_placement"), cpu)
        except PercpuError as e:
            where, why = self._no_cpu("unit_placement", cpu)
            raise with_context(e, where, why if e.errno == errno.EINVAL else None) from None
        finally:
            if temporary:
                counter.close()
        return UnitPlacement(cpu, *t)

    def unit_placements(self, obj=None):
        """unit_placement() of every possible CPU."""
        counter, temporary = self._probe(obj)
        try:
            h = counter._live()
            return [UnitPlacement(cpu, *counter._d.counter_unit_placement(h, cpu))
                    for cpu in range(self.possible_cpus())]
        finally:
            if temporary:
                counter.close()

    def slab_stats(self):
        return SlabStats(*self._d.slab_stats())

    def rseq_available(self):
        """glibc registered rseq for this process."""
        return self._d.rseq_process_available()

    def rseq_registered(self):
        """The calling thread has an rseq area: its adds take the rseq
        path (otherwise the atomic fallback)."""
        return self._d.rseq_thread_registered()

    def fence_available(self):
        """The membarrier fence works in this process."""
        return self._d.fence_available()

    def fast_mode_available(self):
        """rseq and the fence both work: refcounts can use per-CPU mode
        (otherwise they stay atomic for the whole process)."""
        return self._d.fast_mode_available()

    def path(self):
        """"rseq" or "fallback": the path the calling thread's adds take."""
        return "rseq" if self.rseq_registered() else "fallback"


_default = Topology(_drivers.default())
possible_cpus = _default.possible_cpus
possible_cpus_exact = _default.possible_cpus_exact
current_cpu = _default.current_cpu
numa_available = _default.numa_available
nr_nodes = _default.nr_nodes
node_limit = _default.node_limit
node_of_cpu = _default.node_of_cpu
memory_node_of_cpu = _default.memory_node_of_cpu
cpu_nodes = _default.cpu_nodes
unit_placement = _default.unit_placement
unit_placements = _default.unit_placements
slab_stats = _default.slab_stats
rseq_available = _default.rseq_available
rseq_registered = _default.rseq_registered
fence_available = _default.fence_available
fast_mode_available = _default.fast_mode_available
path = _default.path
