# SPDX-License-Identifier: MIT
"""percpu: per-CPU counters and reference counts for Python.

The kernel's scalable counting primitives, in userspace, over the C
library of the same name:

* :class:`Counter` / :class:`CounterArray` -- FreeBSD counter(9): adds
  touch only the calling CPU's word; reads sum all CPUs; zero is exact.
* :class:`LocalCount` -- NetBSD localcount(9): CPU-local references with
  ``drain()`` and ``trydrain()``.
* :class:`Pserialize` / :func:`read_section` -- NetBSD pserialize(9):
  read sections (``with percpu.read_section():``) for lookups, and
  ``perform()``, which waits out every read section in flight.
* :class:`RateCheck` -- FreeBSD counter_ratecheck(9): events per second
  against a limit, on a per-CPU counter.
* :class:`PercpuRef` -- Linux percpu_ref: per-CPU get/put until
  ``kill()``, then an atomic count whose zero calls ``release``.
* :mod:`percpu.sysctl` -- counters exported by dotted name, readable,
  writable (zeroing) and dumpable in the Prometheus text format.
* :mod:`percpu.topology` -- possible CPUs, NUMA nodes, where each CPU's
  slab unit lives, and whether this thread takes the rseq path.

Two interchangeable backends bind the C library: ``"swig"`` (SWIG
-builtin; the default, being the faster) and ``"cffi"`` (CFFI API mode).
Choose with the environment variable ``PERCPU_BACKEND=swig|cffi`` before
import, per object with ``backend="cffi"``, or take a whole namespace with
:func:`get_backend`.  :data:`backend` names the default one.

Errors from C are :class:`PercpuError`, an :class:`OSError` with errno
and a ``detail`` naming the call and the object.  No object can be copied
or pickled (TypeError): each owns its C object.  See docs/python.md for
the GIL policy and per-call costs.

Test support ships in the package but is not its API and not in
``__all__``: ``percpu.stress`` (``python3 -m percpu.stress``, exact stress
checks over test-only C loops compiled into the extensions) and
``percpu.bench`` (``python3 -m percpu.bench``, per-call costs).
"""

from typing import Literal, Union

from . import _drivers
from ._errors import PercpuError
from ._objects import (
    Counter,
    CounterArray,
    LocalCount,
    PercpuRef,
    Pserialize,
    RateCheck,
    ReadSection,
    Reference,
    in_read_section,
    read_section,
    set_callback_error_hook,
)
from . import sysctl
from . import stat
from . import topology
from ._backend import Backend, get_backend

__all__ = [
    "Backend",
    "BackendName",
    "Counter",
    "CounterArray",
    "LocalCount",
    "PercpuError",
    "PercpuRef",
    "Pserialize",
    "RateCheck",
    "ReadSection",
    "Reference",
    "available_backends",
    "backend",
    "get_backend",
    "in_read_section",
    "read_section",
    "set_callback_error_hook",
    "stat",
    "sysctl",
    "topology",
]

# The contents of VERSION (//tests/lint:version_test fails if they differ).
__version__ = "0.1.0"

#: The default backend's name ("swig" or "cffi"): $PERCPU_BACKEND if set,
#: else the fastest one that imports.
#: The names a backend may have (for type annotations).
BackendName = Union[Literal["swig"], Literal["cffi"]]

backend = _drivers.default().name


def available_backends():
    """The backends that import in this installation, fastest first."""
    return _drivers.available()
