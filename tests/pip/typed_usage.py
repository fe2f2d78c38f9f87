# SPDX-License-Identifier: MIT
"""A typed program using percpu's public API, checked with `mypy --strict`
against the installed stubs (pip_install_test.sh): the stubs must be
complete enough for a strictly typed caller.  Also run, so every line here
is a real call."""

import time
from typing import List, Optional

import percpu
from percpu import sysctl, topology


def count_requests(n: int) -> int:
    hits = percpu.Counter()
    for _ in range(n):
        hits.add()
    hits += 2
    hits.register("typed_usage.hits", descr="typed example")
    value: int = int(hits)
    assert sysctl.read("typed_usage.hits") == value
    text: str = sysctl.prometheus("typed_usage")
    assert "typed_usage_hits" in text
    hits.close()
    return value


def guarded_work() -> bool:
    lc = percpu.LocalCount()
    with lc.acquire():
        pass
    lc.drain()
    drained: bool = lc.state == "drained"
    lc.close()
    return drained


def ref_lifecycle() -> int:
    released: List[int] = []
    ref = percpu.PercpuRef(release=lambda: released.append(1))
    with ref.acquire():
        ref.get(2)
        ref.put(2)
    ref.kill()  # in percpu mode the release comes from the switch worker
    deadline = time.monotonic() + 10.0
    while not released and time.monotonic() < deadline:
        time.sleep(0.001)
    assert ref.releases == len(released)
    return len(released)


def arithmetic_and_errors() -> Optional[str]:
    c = percpu.Counter()
    c += 5
    c -= 2
    assert int(c) == 3
    c.close()
    rc = percpu.RateCheck(10)
    rc.limit = 20
    limit: int = rc.limit
    assert limit == 20
    rc.close()
    lc = percpu.LocalCount()
    lc.drain()
    detail: Optional[str] = None
    try:
        lc.drain()
    except percpu.PercpuError as e:
        detail = e.detail
    lc.close()
    assert detail is not None and detail.startswith("LocalCount.drain: ")
    return detail


def placement() -> Optional[int]:
    nodes: List[Optional[int]] = topology.cpu_nodes()
    return nodes[0] if nodes else None


def scrape() -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    import percpu.prometheus

    c = percpu.Counter()
    c.add(4)
    c.register("typed_usage.scraped")
    registry = CollectorRegistry()
    registry.register(percpu.prometheus.Collector("app_"))
    text: str = generate_latest(registry).decode()
    c.close()
    assert "app_typed_usage_scraped_total 4.0" in text
    return text


def main() -> None:
    be: percpu.Backend = percpu.get_backend()
    assert be.name in percpu.available_backends()
    name: percpu.BackendName = "swig"
    assert name in ("swig", "cffi")
    assert count_requests(10) == 12
    assert guarded_work()
    assert ref_lifecycle() == 1
    arithmetic_and_errors()
    placement()
    scrape()
    try:
        percpu.CounterArray(0)
    except (percpu.PercpuError, ValueError):
        pass


if __name__ == "__main__":
    main()
    print("typed_usage: ok")
