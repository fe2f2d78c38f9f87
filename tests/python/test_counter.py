# SPDX-License-Identifier: MIT
"""Counter and CounterArray: every call, errors, closed objects."""

import threading
import time

import pytest

from percpu import PercpuError

U64 = 1 << 64


class Index:
    """An integer-like object with only __index__ (as numpy's are)."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


def test_counter_basics(pc):
    c = pc.Counter()
    assert c.value() == 0 and int(c) == 0
    c.add()
    c.add(5)
    c.add(Index(4))
    c += 10
    assert c.value() == 20
    assert int(c) == 20
    assert sum(c.per_cpu()) == 20
    assert len(c.per_cpu()) == pc.topology.possible_cpus()
    assert repr(c) == f"<percpu.Counter value=20 backend={pc.name}>"
    assert not c.closed and c.backend == pc.name
    c.close()


def test_counter_wraps_modulo_2_64(pc):
    c = pc.Counter()
    c.add(-1)
    assert c.value() == U64 - 1
    c.add(2)
    assert c.value() == 1
    c.add(2**63 - 1)
    c.add(2**63 - 1)
    assert c.value() == (1 + 2 * (2**63 - 1)) % U64
    c.close()


def test_counter_zero_and_fetch_and_zero(pc):
    c = pc.Counter()
    c.add(7)
    assert c.fetch_and_zero() == 7
    assert c.value() == 0
    c.add(3)
    assert c.zero() is None
    assert c.value() == 0
    c.close()


@pytest.mark.parametrize("bad,exc", [(1.5, TypeError), ("1", TypeError),
                                     (None, TypeError), (2**63, OverflowError),
                                     (-2**63 - 1, OverflowError)])
def test_counter_add_rejects(pc, bad, exc):
    c = pc.Counter()
    with pytest.raises(exc):
        c.add(bad)
    assert c.value() == 0
    c.close()


def test_counter_closed(pc):
    c = pc.Counter()
    c.add(1)
    c.close()
    c.close()  # idempotent
    assert c.closed
    assert repr(c) == "<percpu.Counter closed>"
    for call in (c.add, lambda: c.add(2), c.value, c.zero, c.fetch_and_zero,
                 c.per_cpu, lambda: int(c), lambda: c.register("x.y")):
        with pytest.raises(ValueError, match="closed Counter"):
            call()
    with pytest.raises(ValueError):
        with c:
            pass


def test_counter_context_manager(pc):
    with pc.Counter() as c:
        c.add(2)
        assert c.value() == 2
    assert c.closed


def test_counter_per_cpu_shares_follow_the_cpu(pc):
    """An add lands on the CPU the thread runs on: pin a thread, add,
    and that CPU's share holds it."""
    import os
    cpus = sorted(os.sched_getaffinity(0))
    c = pc.Counter()
    shares = {}

    def body(cpu):
        os.sched_setaffinity(0, {cpu})
        c.add(1000 + cpu)

    for cpu in cpus[:4]:
        t = threading.Thread(target=body, args=(cpu,))
        t.start()
        t.join()
        shares[cpu] = 1000 + cpu
    per_cpu = c.per_cpu()
    for cpu, v in shares.items():
        assert per_cpu[cpu] == v
    c.close()


def test_array_basics(pc):
    a = pc.CounterArray(4)
    assert len(a) == 4
    a.add(0)
    a.add(1, 5)
    a.add(-1, 7)           # last element
    a.add(Index(2), Index(3))
    assert a.values() == [1, 5, 3, 7]
    assert list(a) == [1, 5, 3, 7]
    assert a[1] == 5 and a[-1] == 7 and a.value(3) == 7
    assert a[1:3] == [5, 3]
    assert repr(a) == f"<percpu.CounterArray values=[1, 5, 3, 7] backend={pc.name}>"
    a.zero()
    assert a.values() == [0, 0, 0, 0]
    a.close()
    with pytest.raises(ValueError, match="closed CounterArray"):
        a.values()
    assert len(a) == 4


def test_array_errors(pc):
    with pytest.raises(ValueError):
        pc.CounterArray(0)
    with pytest.raises(TypeError):
        pc.CounterArray(2.0)
    a = pc.CounterArray(2)
    for i in (2, -3, 100):
        with pytest.raises(IndexError):
            a.add(i)
        with pytest.raises(IndexError):
            a.value(i)
    with pytest.raises(TypeError):
        a.add(0, 0.5)
    with pytest.raises(OverflowError):
        a.add(0, 2**64)
    assert a.values() == [0, 0]
    a.close()


def test_array_large(pc):
    n = 1000
    a = pc.CounterArray(n)
    for i in range(n):
        a.add(i, i)
    assert a.values() == list(range(n))
    a.close()


def test_unit_placement_of_a_counter(pc):
    c = pc.Counter()
    for pl in pc.topology.unit_placements(c):
        assert pl.pages >= 1
        assert pl.wanted_node == pc.topology.memory_node_of_cpu(pl.cpu)
        if pl.bind_error == 0 and pl.pages_unknown == 0:
            assert pl.actual_node == pl.wanted_node
    c.close()
    with pytest.raises(ValueError):
        pc.topology.unit_placement(0, c)
    with pytest.raises(PercpuError):
        pc.topology.unit_placement(pc.topology.possible_cpus())


# ---- RateCheck (counter_ratecheck) ----


def test_ratecheck_under_and_over_the_limit(pc):
    rc = pc.RateCheck(3)
    # Within one second (the calls take microseconds; a second boundary
    # falling inside restarts the count, so retry the whole check once).
    for attempt in range(2):
        got = [rc.check() for _ in range(5)]
        if got == [0, 0, 0, -1, -1]:
            break
        rc = pc.RateCheck(3)
    assert got == [0, 0, 0, -1, -1]
    assert rc.count == 5
    assert "limit=3" in repr(rc)


def test_ratecheck_reports_the_over_second_once(pc):
    # limit 0: every second is over, so the first call of the next second
    # returns the previous second's count -- to exactly one caller; with
    # the final count, every call is accounted for exactly once.
    rc = pc.RateCheck(0)
    calls, reported = 0, 0
    deadline = time.monotonic() + 1.3  # crosses at least one second boundary
    # ... and on until a second has been reported: a thread stalled past
    # the deadline (a loaded machine) must not leave it without one.
    while time.monotonic() < deadline or reported == 0:
        r = rc.check()
        calls += 1
        assert r == -1 or r > 0
        if r > 0:
            reported += r
    assert reported > 0
    assert reported + rc.count == calls


def test_ratecheck_limit_per_call_and_errors(pc):
    rc = pc.RateCheck(100)
    assert rc.check(limit=0) == -1
    with pytest.raises(ValueError):
        rc.check(limit=-1)
    with pytest.raises(ValueError):
        pc.RateCheck(-1)
    with pytest.raises(TypeError):
        pc.RateCheck(1.5)
    rc.close()
    rc.close()
    assert rc.closed
    with pytest.raises(ValueError):
        rc.check()
