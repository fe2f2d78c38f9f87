# SPDX-License-Identifier: MIT
"""Ownership: C objects are freed when their Python owner is closed or
collected -- no leak over many cycles -- and never while a call on
another thread still uses them."""

import gc
import threading

import pytest

from conftest import settle, wait_for

CYCLES = 3000


def make_all(pc):
    c = pc.Counter()
    c.add(1)
    a = pc.CounterArray(3)
    a.add(2)
    lc = pc.LocalCount()
    lc.acquire().release()
    r = pc.PercpuRef(lambda: None)
    r.get()
    r.put()
    ra = pc.PercpuRef(atomic=True, allow_reinit=True)
    return [c, a, lc, r, ra]


def test_create_close_cycles(pc):
    d = pc.driver
    base = d.live_objects()
    slab = pc.topology.slab_stats().objects
    for _ in range(CYCLES):
        for obj in make_all(pc):
            obj.close()
    assert settle(d, base), f"{d.live_objects() - base} C objects still live"
    assert pc.topology.slab_stats().objects == slab
    assert d.leaked_objects() == 0


def test_create_drop_cycles(pc):
    """The same, leaving everything to the garbage collector."""
    d = pc.driver
    base = d.live_objects()
    slab = pc.topology.slab_stats().objects
    for _ in range(CYCLES):
        make_all(pc)
    assert settle(d, base), f"{d.live_objects() - base} C objects still live"
    assert pc.topology.slab_stats().objects == slab


def test_registered_counters_freed_on_close(pc):
    d = pc.driver
    base = d.live_objects()
    for i in range(500):
        c = pc.Counter()
        c.register(f"pytest_own_{pc.name}.c{i % 7}")
        c.close()
    assert settle(d, base)
    assert pc.sysctl.names(f"pytest_own_{pc.name}") == []


def test_close_while_a_call_runs_on_another_thread(pc):
    """close() while a long C loop (GIL released) uses the counter: the
    loop finishes on live memory, and the object is freed after it."""
    d = pc.driver
    base = d.live_objects()
    c = pc.Counter()
    h = c._live()
    started = threading.Event()
    out = []

    def loop():
        started.set()
        out.append(d.stress_counter_add(h, 20_000_000, 1))

    t = threading.Thread(target=loop)
    t.start()
    started.wait()
    c.close()
    del h
    assert c.closed
    t.join()
    assert out == [20_000_000]
    assert settle(d, base)


def test_objects_are_independent_of_their_owner_threads(pc):
    """Objects created on one thread, used and dropped on another."""
    d = pc.driver
    base = d.live_objects()
    box = []
    t = threading.Thread(target=lambda: box.extend(make_all(pc)))
    t.start()
    t.join()
    c = box[0]
    c.add(2)
    assert c.value() == 3
    del c
    box.clear()
    assert settle(d, base)


def test_callback_cycle_is_freed_by_close(pc):
    """A release callable that references its own PercpuRef forms a cycle
    through C the GC cannot see; close() breaks it."""
    d = pc.driver
    base = d.live_objects()

    class Holder:
        def __init__(self):
            self.released = False
            self.ref = pc.PercpuRef(self.on_release)

        def on_release(self):
            self.released = True

    h = Holder()
    h.ref.close()
    assert wait_for(lambda: h.released)
    del h
    assert settle(d, base)
