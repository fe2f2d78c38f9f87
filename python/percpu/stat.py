# SPDX-License-Identifier: MIT
"""Counters published by other processes, read live (issue 17).

A process publishes its sysctl tree with ``percpu.stat.publish()`` (the
same as ``percpu.sysctl.publish()``), ``counter_sysctl_publish()`` in C,
or ``PERCPU_PUBLISH=1`` in its environment.  Any process of the same user
can then read the counters' current values without calling into it --
this module, or the ``percpu-stat`` command::

    percpu.stat.read(pid)        # {"app.requests": 1234, "app.codes": [7, 0, 2]}
    percpu.stat.snapshot(pid)    # {"pid": ..., "command": ..., "counters": [...]}

Reading parses the other process's stats segment with the C parser
``percpu-stat`` uses, which trusts nothing in it.  A pid that does not
exist (or exits meanwhile) raises :class:`ProcessLookupError`, one of
another user :class:`PermissionError`; one that publishes nothing, or
whose segment is refused, :class:`percpu.PercpuError` -- each naming the
pid and the reason.  ``percpu.get_backend(name).stat`` does the same
through another backend.
"""

import errno
import json

from . import _drivers
from ._namespace import BackendNamespace
from ._errors import PercpuError
from .sysctl import Sysctl

__all__ = ["Stat", "publish", "published", "read", "snapshot"]

_EXCEPTIONS = {
    errno.ESRCH: ProcessLookupError,
    errno.EACCES: PermissionError,
}


class Stat(BackendNamespace):
    """Publication and other processes' counters, through one backend."""

    _attribute = "stat"

    def __init__(self, driver):
        super().__init__(driver)
        self._tree = Sysctl(driver)

    def publish(self):
        """Publish this process's sysctl tree (``percpu.sysctl.publish``)."""
        self._tree.publish()

    def published(self):
        """Whether this process publishes its tree (a bool)."""
        return self._tree.published()

    def snapshot(self, pid):
        """Every counter `pid` publishes, as ``{"pid", "command",
        "counters": [{"name", "metric", "kind", "help", "labels", "value"
        [, "index", "length"]}, ...]}`` (percpu-stat --json's object):
        each value exact at some instant of the read."""
        where = f"stat.snapshot({pid!r})"
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise TypeError(f"{where}: the pid must be an int, not {type(pid).__name__}")
        if pid <= 0:
            raise ValueError(f"{where}: the pid must be positive")
        try:
            text = self._d.stat_read_json(pid)
        except PercpuError as e:
            why = self._d.stat_last_error() or e.strerror
            cls = _EXCEPTIONS.get(e.errno)
            if cls is not None:
                raise cls(e.errno, f"{where}: {why}") from None
            out = PercpuError(e.errno, e.strerror)
            out.detail = f"{where}: {why}"
            raise out from None
        return json.loads(text)

    def read(self, pid):
        """``{dotted name: value}`` of every counter `pid` publishes: an
        int (a gauge's may be negative), or for an array the list of its
        elements' values in index order."""
        out = {}
        for c in self.snapshot(pid)["counters"]:
            if "length" in c:
                values = out.setdefault(c["name"], [0] * c["length"])
                if 0 <= c["index"] < len(values):
                    values[c["index"]] = c["value"]
            else:
                out[c["name"]] = c["value"]
        return out


_default = Stat(_drivers.default())
publish = _default.publish
published = _default.published
snapshot = _default.snapshot
read = _default.read
