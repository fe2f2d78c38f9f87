# SPDX-License-Identifier: MIT
"""The sysctl-style registry: register, read, write, list, Prometheus."""

import errno
import gc

import pytest

import percpu
from percpu import PercpuError
from percpu.sysctl import SysctlEntry


@pytest.fixture
def tree(pc):
    """A clean subtree for the test; whatever it registered goes after."""
    prefix = f"pytest_{pc.name}"
    yield prefix
    for name in pc.sysctl.names(prefix):
        pc.sysctl.unregister(name)


def test_register_read_write(pc, tree):
    c = pc.Counter()
    c.add(5)
    pc.sysctl.register(f"{tree}.net.sent", c, descr="packets sent", writable=True)
    assert c.names == (f"{tree}.net.sent",)
    assert pc.sysctl.read(f"{tree}.net.sent") == 5
    c.add(2)
    assert pc.sysctl.read(f"{tree}.net.sent") == 7
    pc.sysctl.write(f"{tree}.net.sent", 0)
    assert c.value() == 0
    c.add(1)
    pc.sysctl.zero(f"{tree}.net.sent")
    assert c.value() == 0
    with pytest.raises(ValueError):
        pc.sysctl.write(f"{tree}.net.sent", 3)


def test_read_only_leaf(pc, tree):
    c = pc.Counter()
    c.register(f"{tree}.ro", descr="read only")
    c.add(4)
    with pytest.raises(PercpuError) as info:
        pc.sysctl.write(f"{tree}.ro")
    assert info.value.errno == errno.EPERM
    assert c.value() == 4


def test_array_leaf(pc, tree):
    a = pc.CounterArray(3)
    a.add(1, 9)
    a.register(f"{tree}.arr", descr="an array", writable=True)
    assert pc.sysctl.read(f"{tree}.arr") == [0, 9, 0]
    e = pc.sysctl.describe(f"{tree}.arr")
    assert e == SysctlEntry(f"{tree}.arr", "an array", True, 3, True)
    pc.sysctl.write(f"{tree}.arr")
    assert a.values() == [0, 0, 0]


def test_list_names_describe_snapshot(pc, tree):
    counters = []
    for name in ("b.two", "a.one", "c"):
        c = pc.Counter()
        c.add(len(name))
        c.register(f"{tree}.{name}", descr=f"leaf {name}")
        counters.append(c)
    names = pc.sysctl.names(tree)
    assert names == sorted(names) == [f"{tree}.a.one", f"{tree}.b.two", f"{tree}.c"]
    entries = pc.sysctl.list(tree)
    assert [e.name for e in entries] == names
    assert all(isinstance(e, SysctlEntry) and e.length == 1 and e.dynamic
               and not e.writable for e in entries)
    assert pc.sysctl.describe(f"{tree}.c").descr == "leaf c"
    assert pc.sysctl.snapshot(tree) == {f"{tree}.a.one": 5, f"{tree}.b.two": 5,
                                        f"{tree}.c": 1}
    assert set(names) <= set(pc.sysctl.names())
    assert pc.sysctl.list(f"{tree}.zzz") == []


def test_prometheus(pc, tree):
    c = pc.Counter()
    c.add(12)
    c.register(f"{tree}.http.requests", descr="requests served")
    a = pc.CounterArray(2)
    a.add(1, 3)
    a.register(f"{tree}.http.codes", descr="by class")
    text = pc.sysctl.prometheus()
    # A counter's metric name ends in _total (Prometheus's convention).
    metric = f"{tree}_http_requests_total"
    assert f"# HELP {metric} requests served\n" in text
    assert f"# TYPE {metric} counter\n" in text
    assert f"\n{metric} 12\n" in text
    assert f'{tree}_http_codes_total{{index="1"}} 3' in text
    prefixed = pc.sysctl.prometheus("app_")
    assert f"\napp_{metric} 12\n" in prefixed


def test_registry_errors(pc, tree):
    c = pc.Counter()
    for bad in ("", "a..b", ".a", "a.", "a b", "é"):
        with pytest.raises(PercpuError) as info:
            c.register(f"{tree}.{bad}" if bad else bad)
        assert info.value.errno == errno.EINVAL
    c.register(f"{tree}.x.y")
    with pytest.raises(PercpuError) as info:
        pc.Counter().register(f"{tree}.x.y")
    assert info.value.errno == errno.EEXIST
    with pytest.raises(PercpuError) as info:
        pc.Counter().register(f"{tree}.x")          # a prefix of a leaf
    assert info.value.errno == errno.ENOTDIR
    with pytest.raises(PercpuError) as info:
        pc.Counter().register(f"{tree}.x.y.z")      # below a leaf
    assert info.value.errno == errno.ENOTDIR
    with pytest.raises(TypeError):
        pc.sysctl.register(f"{tree}.lc", pc.LocalCount())
    with pytest.raises(TypeError):
        c.register(b"bytes.name")
    for call in (pc.sysctl.read, pc.sysctl.zero, pc.sysctl.describe,
                 pc.sysctl.unregister):
        with pytest.raises(PercpuError) as info:
            call(f"{tree}.missing")
        assert info.value.errno == errno.ENOENT


def test_registry_keeps_counter_alive(pc, tree):
    c = pc.Counter()
    c.add(3)
    c.register(f"{tree}.kept")
    del c
    gc.collect()
    assert pc.sysctl.read(f"{tree}.kept") == 3
    pc.sysctl.unregister(f"{tree}.kept")
    with pytest.raises(PercpuError):
        pc.sysctl.read(f"{tree}.kept")


def test_close_removes_leaves(pc, tree):
    c = pc.Counter()
    c.register(f"{tree}.one")
    c.register(f"{tree}.two")           # one counter, two names
    assert pc.sysctl.names(tree) == [f"{tree}.one", f"{tree}.two"]
    c.close()
    assert pc.sysctl.names(tree) == []
    assert c.names == ()


def test_unregister_keeps_counter_open(pc, tree):
    c = pc.Counter()
    c.register(f"{tree}.u")
    pc.sysctl.unregister(f"{tree}.u")
    assert c.names == ()
    c.add(1)
    assert c.value() == 1
    c.register(f"{tree}.u")             # the name is free again
    c.close()


def test_module_functions_use_the_default_backend():
    c = percpu.Counter()
    c.add(6)
    percpu.sysctl.register("pytest_default.leaf", c)
    try:
        assert percpu.sysctl.read("pytest_default.leaf") == 6
        assert "pytest_default_leaf_total 6" in percpu.sysctl.prometheus()
    finally:
        c.close()


def test_read_and_zero(pc, tree):
    c = pc.Counter()
    c.add(9)
    c.register(f"{tree}.rz", writable=True)
    assert pc.sysctl.read_and_zero(f"{tree}.rz") == 9
    assert c.value() == 0
    a = pc.CounterArray(2)
    a.add(0, 4)
    a.register(f"{tree}.rza", writable=True)
    assert pc.sysctl.read_and_zero(f"{tree}.rza") == [4, 0]
    ro = pc.Counter()
    ro.add(1)
    ro.register(f"{tree}.rzro")
    with pytest.raises(PercpuError) as info:
        pc.sysctl.read_and_zero(f"{tree}.rzro")
    assert info.value.errno == errno.EPERM
    assert ro.value() == 1              # refused before zeroing anything


def test_name_limits_and_collisions(pc, tree):
    c = pc.Counter()
    with pytest.raises(PercpuError) as info:
        c.register(f"{tree}." + "x" * 300)
    assert info.value.errno == errno.ENAMETOOLONG
    c.register(f"{tree}.a.b_c")
    with pytest.raises(PercpuError) as info:
        pc.Counter().register(f"{tree}.a_b.c")  # same Prometheus metric
    assert info.value.errno == errno.EEXIST
    with pytest.raises(PercpuError) as info:
        pc.sysctl.prometheus("bad prefix")
    assert info.value.errno == errno.EINVAL


def test_hidden_leaf_is_skipped_by_listings_but_reachable_by_name(pc, tree):
    # CTLFLAG_SKIP: not in list()/names()/snapshot()/prometheus(), yet
    # read, written and described by name like any other leaf.
    shown, hidden = pc.Counter(), pc.Counter()
    shown.register(f"{tree}.shown")
    hidden.register(f"{tree}.hidden", descr="internal", writable=True, hidden=True)
    hidden.add(6)
    assert pc.sysctl.names(tree) == [f"{tree}.shown"]
    assert [e.name for e in pc.sysctl.list(tree)] == [f"{tree}.shown"]
    assert f"{tree}.hidden" not in pc.sysctl.snapshot(tree)
    assert "hidden" not in pc.sysctl.prometheus(tree)
    assert pc.sysctl.read(f"{tree}.hidden") == 6
    assert pc.sysctl.describe(f"{tree}.hidden") == SysctlEntry(
        f"{tree}.hidden", "internal", True, 1, True)
    pc.sysctl.write(f"{tree}.hidden")
    assert hidden.value() == 0
    hidden.close()  # its leaf goes with it (the fixture cannot list it)
    with pytest.raises(PercpuError) as info:
        pc.sysctl.read(f"{tree}.hidden")
    assert info.value.errno == errno.ENOENT


def test_hidden_array_leaf(pc, tree):
    a = pc.CounterArray(2)
    a.register(f"{tree}.harr", hidden=True)
    a.add(1, 3)
    assert pc.sysctl.names(tree) == []
    assert pc.sysctl.read(f"{tree}.harr") == [0, 3]
    a.close()
