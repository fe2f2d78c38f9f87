# SPDX-License-Identifier: MIT
"""Integer arguments at the edges of their C types, on both backends.

Each facade call checks its integers against the C type it passes them
as, and a value outside is refused up front with a message naming the
call, the valid range and the object -- never accepted and then failing
on every later call (RateCheck(2**64) once did).
"""

import re

import pytest

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


def _at(obj):
    return re.escape(f"(percpu.{type(obj).__name__} at 0x{id(obj):x})")


def test_counter_isub(pc):
    c = pc.Counter()
    c += 10
    c -= 3
    assert c.value() == 7
    c -= -5  # subtracting a negative adds
    assert c.value() == 12
    c -= 12
    assert c.value() == 0
    c -= 1  # wraps modulo 2**64, as counter(9)'s uint64_t does
    assert c.value() == 2**64 - 1
    c += 1
    assert c.value() == 0
    c.close()


def test_counter_inplace_bounds(pc):
    c = pc.Counter()
    c += INT64_MAX
    c += INT64_MIN
    assert c.value() == 2**64 - 1
    c.zero()
    c -= 2**63  # add(-2**63): the lowest int64
    c -= -INT64_MAX  # add(2**63 - 1)
    assert c.value() == 2**64 - 1
    c.zero()
    with pytest.raises(OverflowError, match=r"^Counter \+=: n=9223372036854775808 "
                       r"is outside the int64 range -2\*\*63\.\.2\*\*63-1 " + _at(c)):
        c += 2**63
    with pytest.raises(OverflowError, match=r"^Counter \+=: n=-9223372036854775809 " + ".*" + _at(c)):
        c += INT64_MIN - 1
    with pytest.raises(OverflowError, match=r"^Counter -=: n=-9223372036854775808 is "
                       r"outside -\(2\*\*63-1\)\.\.2\*\*63 .*" + _at(c)):
        c -= INT64_MIN
    with pytest.raises(OverflowError, match=r"^Counter -=: n=9223372036854775809 "):
        c -= 2**63 + 1
    with pytest.raises(TypeError):
        c -= 1.0
    with pytest.raises(TypeError):
        c += "1"
    assert c.value() == 0  # nothing refused was added
    c.close()
    with pytest.raises(ValueError, match="closed Counter"):
        c -= 1


def test_counter_add_bounds(pc):
    # add() is the binding's own callable (the fast path): its range is
    # int64 too, and a value outside is an OverflowError.
    c = pc.Counter()
    c.add(INT64_MAX)
    c.add(INT64_MIN)
    assert c.value() == 2**64 - 1
    for bad in (2**63, INT64_MIN - 1):
        with pytest.raises(OverflowError):
            c.add(bad)
    c.close()


def test_counter_array_size_bounds(pc):
    with pytest.raises(ValueError, match=r"^CounterArray\(0\): needs at least one element"):
        pc.CounterArray(0)
    with pytest.raises(ValueError, match=r"^CounterArray\(-1\): "):
        pc.CounterArray(-1)
    with pytest.raises(OverflowError, match=r"^CounterArray\(18446744073709551616\): n is "
                       r"outside the size_t range 1\.\.2\*\*64-1"):
        pc.CounterArray(2**64)
    with pytest.raises(pc.PercpuError, match=r"CounterArray\(18446744073709551615\): too many"):
        pc.CounterArray(2**64 - 1)
    a = pc.CounterArray(1)
    assert len(a) == 1
    a.close()


def test_counter_array_index_and_delta_bounds(pc):
    a = pc.CounterArray(3)
    a.add(-3, INT64_MAX)
    a.add(2, INT64_MIN)
    assert a.values() == [INT64_MAX, 0, 2**63]
    for i in (3, -4, 2**64, -2**64):
        with pytest.raises(IndexError, match=rf"^CounterArray\.add: index {i} out of "
                           r"range for 3 elements " + _at(a)):
            a.add(i)
        with pytest.raises(IndexError, match=rf"^CounterArray\.value: index {i} out of range"):
            a.value(i)
        with pytest.raises(IndexError):
            a[i]
    for n in (2**63, INT64_MIN - 1):
        with pytest.raises(OverflowError, match=rf"^CounterArray\.add: n={n} is outside "
                           r"the int64 range .*" + _at(a)):
            a.add(0, n)
    assert a.values() == [INT64_MAX, 0, 2**63]
    a.close()


def test_ratecheck_limit_bounds(pc):
    for limit, first in ((0, -1), (INT64_MAX, 0)):
        rc = pc.RateCheck(limit)
        assert rc.limit == limit
        assert rc.check() == first  # one event: over a limit of 0 only
        rc.close()
    with pytest.raises(OverflowError, match=r"^RateCheck\(18446744073709551616\): "
                       r"limit=18446744073709551616 is outside 0\.\.2\*\*63-1"):
        pc.RateCheck(2**64)
    with pytest.raises(OverflowError, match=r"^RateCheck\(9223372036854775808\): "):
        pc.RateCheck(2**63)
    with pytest.raises(ValueError, match=r"^RateCheck\(-1\): limit=-1 is outside 0\.\.2\*\*63-1"):
        pc.RateCheck(-1)
    rc = pc.RateCheck(5)
    with pytest.raises(OverflowError, match=r"^RateCheck\.check: limit=9223372036854775808 .*" + _at(rc)):
        rc.check(2**63)
    with pytest.raises(ValueError, match=r"^RateCheck\.check: limit=-1 .*" + _at(rc)):
        rc.check(-1)
    assert rc.check(INT64_MAX) == 0
    with pytest.raises(OverflowError, match=r"^RateCheck\.limit: limit=9223372036854775808 .*" + _at(rc)):
        rc.limit = 2**63
    with pytest.raises(ValueError, match=r"^RateCheck\.limit: "):
        rc.limit = -1
    with pytest.raises(TypeError):
        rc.limit = 1.5
    assert rc.limit == 5  # the refused assignments changed nothing
    rc.limit = 0
    assert rc.check() != 0  # over a limit of 0 (-1, or > 0 at a new second)
    rc.close()


def test_percpu_ref_count_bounds(pc):
    # get/put/tryget take an unsigned long (the fast paths: the binding's
    # own callables).  0 is a no-op; a negative or > 2**64-1 count is an
    # OverflowError and takes nothing.
    r = pc.PercpuRef()
    r.get(0)
    r.put(0)
    assert r.tryget(0)
    for bad in (-1, 2**64):
        for op in (r.get, r.put, r.tryget):
            with pytest.raises(OverflowError):
                op(bad)
    r.kill()
    assert r.releases == 1 or r.is_dying()  # the initial reference was the only one
    r.close()


def test_cpu_argument_bounds(pc):
    t = pc.topology
    n = t.possible_cpus()
    for op in ("node_of_cpu", "memory_node_of_cpu", "unit_placement"):
        f = getattr(t, op)
        f(0)
        for bad in (-1, 2**32, 2**64):
            with pytest.raises(OverflowError, match=rf"^topology\.{op}\({bad}\): cpu is "
                               rf"outside 0\.\.2\*\*32-1 .*possible CPUs are 0\.\.{n - 1}"):
                f(bad)
        with pytest.raises(pc.PercpuError, match=rf"topology\.{op}\({2**32 - 1}\): no such CPU"):
            f(2**32 - 1)
        with pytest.raises(TypeError):
            f(0.0)
