# SPDX-License-Identifier: MIT
"""percpu.get_backend(name): the whole API bound to one backend."""

import threading
from typing import Dict

from . import _drivers
from . import _objects
from ._errors import PercpuError
from .stat import Stat
from .sysctl import Sysctl
from .topology import Topology

__all__ = ["Backend", "get_backend"]


def _bound(cls, name):
    # A subclass whose objects default to this backend: isinstance()
    # against percpu.Counter etc. holds for every backend's objects.
    return type(cls.__name__, (cls,), {
        "_backend": name,
        "__module__": "percpu",
        "__doc__": cls.__doc__,
        "__qualname__": cls.__qualname__,
    })


class Backend:
    """The percpu API on one backend: ``Counter``, ``CounterArray``,
    ``LocalCount``, ``PercpuRef``, ``Pserialize``, ``RateCheck``,
    ``read_section()``, ``sysctl``, ``stat``, ``topology``.

    Both backends drive the same C library state in one process (one
    slab, one sysctl tree, one percpu_ref worker), but a C object belongs
    to the backend that created it."""

    PercpuError = PercpuError
    Reference = _objects.Reference

    def __init__(self, name):
        driver = _drivers.load(name)
        self.name = name
        self.driver = driver
        self.Counter = _bound(_objects.Counter, name)
        self.CounterArray = _bound(_objects.CounterArray, name)
        self.LocalCount = _bound(_objects.LocalCount, name)
        self.PercpuRef = _bound(_objects.PercpuRef, name)
        self.RateCheck = _bound(_objects.RateCheck, name)
        self.Pserialize = _bound(_objects.Pserialize, name)
        self.sysctl = Sysctl(driver)
        self.stat = Stat(driver)
        self.topology = Topology(driver)

    ReadSection = _objects.ReadSection

    def read_section(self):
        """A pserialize(9) read section entered through this backend
        (percpu.read_section)."""
        return _objects.ReadSection(self.driver)

    def in_read_section(self):
        """True if the calling thread is inside a read section."""
        return bool(self.driver.in_read_section())

    def __repr__(self):
        return f"<percpu backend {self.name!r}>"

    # A namespace, not a state: copies are itself; a pickle loads as
    # get_backend(name) (the objects it makes are not picklable).
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (get_backend, (self.name,))


_lock = threading.Lock()
_backends: Dict[str, "Backend"] = {}


def get_backend(name=None):
    """The Backend for `name` ("swig" or "cffi"; None: the default).
    Raises ValueError for an unknown name, ImportError if its extension
    module cannot be loaded."""
    if name is None:
        name = _drivers.default().name
    with _lock:
        backend = _backends.get(name)
        if backend is None:
            backend = _backends[name] = Backend(name)
    return backend
