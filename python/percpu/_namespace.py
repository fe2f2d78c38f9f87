# SPDX-License-Identifier: MIT
"""What percpu.sysctl, percpu.stat and percpu.topology share: each is a
namespace over one backend's driver, holding no state of its own."""

__all__ = ["BackendNamespace"]


def _by_backend(name, attribute):
    """Backend `name`'s namespace `attribute` (what a pickled one loads as)."""
    from ._backend import get_backend  # late: _backend imports the namespaces
    return getattr(get_backend(name), attribute)


class BackendNamespace:
    """A namespace of one backend (``self._d``, its driver), found on
    :class:`percpu.Backend` as ``_attribute``: copies are itself, and a
    pickled one loads as the same backend's."""

    _attribute = None

    def __init__(self, driver):
        self._d = driver

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (_by_backend, (self._d.name, self._attribute))

    def __repr__(self):
        return f"<percpu.{self._attribute} backend={self._d.name!r}>"
