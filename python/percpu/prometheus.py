# SPDX-License-Identifier: MIT
"""A prometheus_client collector over the sysctl tree.

    from prometheus_client import CollectorRegistry, generate_latest
    import percpu.prometheus

    registry = CollectorRegistry()
    registry.register(percpu.prometheus.Collector())
    print(generate_latest(registry).decode())

Each collect() takes the C dump (``percpu.sysctl.prometheus(prefix)``,
``counter_sysctl_prometheus``) and hands its families to prometheus_client,
so the names, HELP texts, types, label sets and values are the C dump's
(docs/counter.md has the mapping): counters are counter families named
without ``_total`` (prometheus_client adds it to the samples), CTLFLAG_GAUGE
leaves are gauge families, arrays keep their ``index`` label or the
element labels given at registration in C.

prometheus_client is optional: on Debian ``apt install
python3-prometheus-client``, elsewhere ``pip install prometheus-client``.
Without it, importing this module raises ImportError saying so.
"""

try:
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import Collector as _CollectorBase
except ImportError as e:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "percpu.prometheus: cannot import prometheus_client "
        f"({e}); install it: on Debian 'apt install python3-prometheus-client', "
        "elsewhere 'pip install prometheus-client'",
        name=__name__) from e

import errno

from ._errors import PercpuError, with_context
from .sysctl import _PREFIX_WHY

__all__ = ["Collector"]


class Collector(_CollectorBase):
    """The sysctl tree as Prometheus metrics, for a prometheus_client
    registry: ``registry.register(Collector(prefix))``.

    `prefix` is prepended to every metric name, as for
    ``percpu.sysctl.prometheus(prefix)``; `backend` is the percpu
    backend's name (None: the default; the tree is the same).  A bad
    prefix raises PercpuError(EINVAL) here, not at scrape time.
    """

    def __init__(self, prefix="", *, backend=None):
        from ._backend import get_backend
        if not isinstance(prefix, str):
            raise TypeError(f"prometheus.Collector(prefix={prefix!r}): the prefix "
                            f"must be a str, not {type(prefix).__name__}")
        self._prefix = prefix
        self._sysctl = get_backend(backend).sysctl
        self._dump()  # refuse a bad prefix now, naming it

    def __repr__(self):
        return f"<percpu.prometheus.Collector prefix={self._prefix!r}>"

    def _dump(self):
        try:
            return self._sysctl.prometheus(self._prefix or None)
        except PercpuError as e:
            raise with_context(e, f"prometheus.Collector(prefix={self._prefix!r})",
                               _PREFIX_WHY if e.errno == errno.EINVAL else None) from None

    def describe(self):
        """No families up front: the tree changes at run time (so the
        registry neither calls collect() at register() nor checks names
        against other collectors)."""
        return []

    def collect(self):
        """The tree's families now (each leaf read once, by the C dump)."""
        yield from text_string_to_metric_families(self._dump())
