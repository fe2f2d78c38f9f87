# SPDX-License-Identifier: MIT
"""The sysctl-style tree of named counters (FreeBSD SYSCTL_COUNTER_U64).

One process-wide tree of dotted names ("net.inet.tcp.sent").  A leaf is
a Counter or a CounterArray; a *read* returns its value (an int, or a
list of ints for an array); a *write* zeroes it and is refused
(PercpuError EPERM) unless the leaf was registered ``writable``.
Counters registered by C code in the same process (SYSCTL_COUNTER_U64)
appear here too: the tree is the C library's, shared by both backends.

    c = percpu.Counter()
    percpu.sysctl.register("app.requests", c, descr="requests served")
    percpu.sysctl.read("app.requests")      # -> int
    percpu.sysctl.list("app")               # -> [SysctlEntry(...)]
    print(percpu.sysctl.prometheus())       # text exposition format 0.0.4

The functions of this module use the default backend;
``percpu.get_backend(name).sysctl`` has the same functions on another.
Names are components of [A-Za-z0-9_] joined by dots (bad names raise
PercpuError EINVAL).  Unknown names raise PercpuError ENOENT.  Error
messages name the call and the leaf: ``"sysctl.write('app.hits'):
read-only leaf (register it with writable=True to allow zeroing)"``.

A Sysctl namespace holds no state of its own: ``copy`` returns the same
namespace, and a pickled one loads as the same backend's namespace.
"""

import errno
from collections import namedtuple

from . import _drivers
from ._namespace import BackendNamespace
from . import _objects
from ._errors import PercpuError, raise_errno, with_context

__all__ = [
    "SysctlEntry",
    "Sysctl",
    "register",
    "unregister",
    "read",
    "write",
    "read_and_zero",
    "zero",
    "list",
    "names",
    "describe",
    "snapshot",
    "prometheus",
    "publish",
    "published",
]


#: One leaf: dotted name, description, whether writes (zeroing) are
#: allowed, number of values (1: a scalar), and whether it was added at
#: run time (every leaf registered from Python is).
SysctlEntry = namedtuple("SysctlEntry", "name descr writable length dynamic")

_CTLFLAG_WR = 0x40000000


def _entry(t):
    name, descr, access, length, dynamic = t
    return SysctlEntry(name, descr, bool(access & _CTLFLAG_WR), length, dynamic)


_WHY = {
    errno.ENOENT: "no such leaf",
    errno.EPERM: "read-only leaf (register it with writable=True to allow zeroing)",
}

_PREFIX_WHY = ("the prefix is not the start of a Prometheus metric name "
               "([A-Za-z_:][A-Za-z0-9_:]*)")


class Sysctl(BackendNamespace):
    """The tree, through one backend's driver."""

    _attribute = "sysctl"

    def _call(self, op, f, name):
        try:
            return f(name)
        except PercpuError as e:
            raise with_context(e, f"sysctl.{op}({name!r})", _WHY.get(e.errno)) from None

    def register(self, name, counter, *, descr="", writable=False, hidden=False):
        """Export `counter` (a Counter or CounterArray, of any backend) as
        leaf `name` (``writable``, ``hidden``: as for Counter.register).
        The tree keeps it alive until unregister(name) or counter.close()."""
        if not isinstance(counter, (_objects.Counter, _objects.CounterArray)):
            raise TypeError(f"sysctl.register({name!r}): only a Counter or a "
                            f"CounterArray can be registered, not "
                            f"{type(counter).__name__}")
        counter.register(name, descr=descr, writable=writable, hidden=hidden)

    def unregister(self, name):
        """Remove leaf `name` (the counter itself stays open)."""
        obj = _objects._registered_object(name)
        self._call("unregister", lambda n: _objects._unregister(
            n, obj._d if obj is not None else self._d), name)

    def read(self, name):
        """The leaf's value: an int, or a list of ints for an array."""
        values = self._call("read", self._d.sysctl_read, name)
        return values[0] if len(values) == 1 else values

    def write(self, name, value=0):
        """Write the leaf, which zeroes it (sysctl semantics): `value`
        must be 0.  PercpuError(EPERM) for a read-only leaf."""
        if value != 0:
            raise ValueError(f"sysctl.write({name!r}): a counter leaf can only "
                             f"be written with 0 (which zeroes it), not {value!r}")
        self._call("write", self._d.sysctl_zero, name)

    def read_and_zero(self, name):
        """Read and zero in one exact step (sysctl(3) with both oldp and
        newp): each add is in the value returned or stays in the counter.
        PercpuError(EPERM) for a read-only leaf (nothing is zeroed)."""
        values = self._call("read_and_zero", self._d.sysctl_read_and_zero, name)
        return values[0] if len(values) == 1 else values

    def zero(self, name):
        """Same as write(name, 0)."""
        self._call("zero", self._d.sysctl_zero, name)

    def list(self, prefix=""):
        """The leaves under `prefix` ("" for all), in name order."""
        return [_entry(t) for t in self._d.sysctl_list(prefix or None)]

    def names(self, prefix=""):
        """The names of the leaves under `prefix`, in order."""
        return [t[0] for t in self._d.sysctl_list(prefix or None)]

    def describe(self, name):
        """The SysctlEntry of leaf `name`."""
        return _entry(self._call("describe", self._d.sysctl_describe, name))

    def snapshot(self, prefix=""):
        """{name: value} for the leaves under `prefix` (each read
        separately: not one instant)."""
        out = {}
        for name in self.names(prefix):
            try:
                out[name] = self.read(name)
            except PercpuError:
                pass  # removed meanwhile
        return out

    def prometheus(self, prefix=None):
        """The whole tree in the Prometheus text format (0.0.4), the C
        dump's (``counter_sysctl_prometheus``): metric names are `prefix`
        + the dotted name with dots as underscores, counters ending in
        ``_total``; HELP always; arrays become one metric with an
        ``index`` label, or the element label given at registration in
        C (docs/counter.md has the mapping).  A prefix that cannot start
        a metric name raises PercpuError(EINVAL) saying so; a non-str one
        TypeError."""
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"sysctl.prometheus({prefix!r}): the prefix must be "
                            f"a str or None, not {type(prefix).__name__}")
        try:
            return self._d.sysctl_prometheus(prefix)
        except PercpuError as e:
            why = _PREFIX_WHY if e.errno == errno.EINVAL else None
            raise with_context(e, f"sysctl.prometheus({prefix!r})", why) from None


    def publish(self):
        """Publish the tree to other processes (``counter_sysctl_publish``):
        from now on every leaf not registered ``hidden`` -- before or after
        this call, from Python or C -- can be read live by ``percpu-stat``
        and :func:`percpu.stat.read` running as the same user, without
        calling into this process.  Setting ``PERCPU_PUBLISH=1`` in the
        environment does the same when the library loads.  Idempotent;
        stays on for the life of the process.  Raises PercpuError (ENOSYS:
        no memfd in this kernel or sandbox) saying why."""
        rc = self._d.sysctl_publish()
        if rc:
            raise_errno(rc, "sysctl.publish()", self._d.sysctl_last_error() or None)

    def published(self):
        """Whether this process publishes its tree (a bool)."""
        return bool(self._d.sysctl_published())


_default = Sysctl(_drivers.default())
register = _default.register
unregister = _default.unregister
read = _default.read
write = _default.write
read_and_zero = _default.read_and_zero
zero = _default.zero
list = _default.list
names = _default.names
describe = _default.describe
snapshot = _default.snapshot
prometheus = _default.prometheus
publish = _default.publish
published = _default.published
