# SPDX-License-Identifier: MIT
"""Backend selection, the exception class, the shared C state."""

import errno
import os
import subprocess
import sys

import pytest

import percpu
from percpu import PercpuError


def test_both_backends_import():
    assert percpu.available_backends() == ["swig", "cffi"]


def test_default_is_env_or_fastest():
    wanted = os.environ.get("PERCPU_BACKEND")
    assert percpu.backend == (wanted or "swig")
    assert percpu.get_backend().name == percpu.backend
    assert percpu.Counter().backend == percpu.backend


def _import_in_child(env_value):
    env = dict(os.environ)
    env["PERCPU_BACKEND"] = env_value
    return subprocess.run(
        [sys.executable, "-c", "import percpu; print(percpu.backend)"],
        env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["swig", "cffi", "CFFI "])
def test_env_var_selects_backend(name):
    res = _import_in_child(name)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == name.strip().lower()


def test_env_var_unknown_backend_fails():
    res = _import_in_child("ctypes")
    assert res.returncode != 0
    assert "unknown percpu backend" in res.stderr


def test_argument_selects_backend(pc):
    c = percpu.Counter(backend=pc.name)
    assert c.backend == pc.name
    assert isinstance(c, percpu.Counter)
    assert isinstance(pc.Counter(), percpu.Counter)
    assert pc.Counter().backend == pc.name
    with pytest.raises(ValueError):
        percpu.Counter(backend="nope")
    with pytest.raises(ValueError):
        percpu.get_backend("nope")


def test_get_backend_is_cached(pc):
    assert percpu.get_backend(pc.name) is pc
    assert repr(pc) == f"<percpu backend {pc.name!r}>"
    assert pc.PercpuError is PercpuError


def test_error_class():
    assert issubclass(PercpuError, OSError)
    e = PercpuError(errno.EINVAL, "Invalid argument")
    assert e.errno == errno.EINVAL and e.strerror == "Invalid argument"
    assert type(e) is PercpuError  # not remapped to an OSError subclass


def test_errors_carry_errno(pc):
    with pytest.raises(PercpuError) as info:
        pc.sysctl.read("no.such.leaf")
    assert type(info.value) is PercpuError
    assert info.value.errno == errno.ENOENT
    assert info.value.strerror == os.strerror(errno.ENOENT)


# A real ENOMEM from the slab (no hook: the product has none).  In a child
# process, so that nothing else runs under the limit: fill the slab's
# chunks until the next allocation needs a new one, then lower RLIMIT_AS
# to the process's size plus half a chunk -- the chunk's mmap fails with
# ENOMEM while the few small allocations Python makes around the call
# still fit -- and check the error, that nothing leaked, and that the
# same allocation works once the limit is lifted.
_ENOMEM_CHILD = r"""
import errno, gc, resource, sys
import percpu
from percpu import PercpuError

pc = percpu.get_backend(sys.argv[1])
scenario = sys.argv[2]
stats = pc.topology.slab_stats
# One chunk: a unit of 128 KiB per possible CPU (core/include/percpu/slab.h).
chunk_bytes = pc.topology.possible_cpus() << 17
MAKERS = {
    "Counter": pc.Counter,
    "CounterArray(4)": lambda: pc.CounterArray(4),
    "LocalCount": pc.LocalCount,
    "PercpuRef": pc.PercpuRef,
}


def vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


keep = []


def fill(leave):
    # Counters are 8 bytes: fill the chunks up to `leave` free bytes.
    while True:
        s = stats()
        if s.chunks and s.bytes_capacity - s.bytes_in_use <= leave:
            assert s.bytes_capacity - s.bytes_in_use == leave, s
            return s
        keep.append(pc.Counter())


def under_limit(make):
    # Everything Python needs around the call exists already: the
    # exception class and its message, pymalloc pools with room.
    try:
        raise PercpuError(errno.ENOMEM, "warm-up")
    except PercpuError:
        pass
    gc.collect()
    gc.disable()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + chunk_bytes // 2, hard))
    try:
        make()
    except PercpuError as e:
        return e
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        gc.enable()
    return None


for make in MAKERS.values():  # warm up every path the failures take
    make().close()
gc.collect()

if scenario == "each":
    for name, make in MAKERS.items():
        before = fill(0)
        err = under_limit(make)
        after = stats()
        assert err is not None, f"{name}: allocated under RLIMIT_AS"
        assert err.errno == errno.ENOMEM, f"{name}: {err!r}"
        assert (after.chunks, after.objects, after.bytes_in_use) == (
            before.chunks, before.objects, before.bytes_in_use), (name, before, after)
        keep.append(make())  # recovers: a new chunk, once the limit is gone
        assert stats().chunks == before.chunks + 1, (name, stats())
elif scenario == "partial":
    before = fill(3 * 8)  # room for 3 counters: the 4th element fails
    err = under_limit(lambda: pc.CounterArray(8))
    after = stats()
    assert err is not None and err.errno == errno.ENOMEM, repr(err)
    assert (after.chunks, after.objects, after.bytes_in_use) == (
        before.chunks, before.objects, before.bytes_in_use), (before, after)
    keep.append(pc.CounterArray(8))
    assert stats().chunks == before.chunks + 1, stats()
else:
    raise SystemExit("unknown scenario " + scenario)
print("OK", scenario, stats())
"""


def _enomem_in_child(pc, scenario):
    res = subprocess.run(
        [sys.executable, "-c", _ENOMEM_CHILD, pc.name, scenario],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("OK " + scenario), res.stdout + res.stderr


def test_enomem_from_the_slab(pc):
    """Counter, CounterArray, LocalCount, PercpuRef: a refused chunk is
    PercpuError(ENOMEM), nothing is left allocated, and the same
    allocation works once memory is there again."""
    _enomem_in_child(pc, "each")


def test_array_partial_failure_frees_everything(pc):
    """A CounterArray whose 4th element finds no memory frees the 3
    already allocated."""
    _enomem_in_child(pc, "partial")


def test_one_c_state_for_both_backends():
    """Both extension modules use one copy of the library: what one
    backend registers, the other reads; one slab serves both."""
    swig, cffi = percpu.get_backend("swig"), percpu.get_backend("cffi")
    c = swig.Counter()
    c.add(41)
    c.register("shared.state.check")
    try:
        assert cffi.sysctl.read("shared.state.check") == 41
        before = cffi.topology.slab_stats().objects
        d = cffi.Counter()
        assert swig.topology.slab_stats().objects == before + 1
        d.close()
    finally:
        c.close()
    with pytest.raises(PercpuError):
        cffi.sysctl.read("shared.state.check")


def test_path_is_the_promised_one(pc, expect):
    topo = pc.topology
    if expect["path"] == "rseq":
        assert topo.path() == "rseq" and topo.rseq_registered()
        assert topo.rseq_available()
    elif expect["path"] == "fallback":
        assert topo.path() == "fallback" and not topo.rseq_registered()
        assert not topo.fast_mode_available()
    if expect["fence"] == "no":
        assert not topo.fence_available()
        assert not topo.fast_mode_available()


def test_path_of_other_threads(pc):
    """Threads started from Python get glibc's rseq registration too."""
    import threading
    seen = []
    t = threading.Thread(target=lambda: seen.append(pc.topology.path()))
    t.start()
    t.join()
    assert seen == [pc.topology.path()]


def test_version():
    assert isinstance(percpu.__version__, str)
