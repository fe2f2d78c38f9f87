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


def test_enomem_from_the_slab(pc):
    d = pc.driver
    d.slab_inject_failure(0)
    try:
        for make in (pc.Counter, lambda: pc.CounterArray(4), pc.LocalCount,
                     pc.PercpuRef):
            with pytest.raises(PercpuError) as info:
                make()
            assert info.value.errno == errno.ENOMEM
    finally:
        d.slab_inject_failure(-1)
    pc.Counter().close()  # allocation works again


def test_array_partial_failure_frees_everything(pc):
    d = pc.driver
    before = pc.topology.slab_stats().objects
    d.slab_inject_failure(3)  # the 4th element fails
    try:
        with pytest.raises(PercpuError):
            pc.CounterArray(8)
    finally:
        d.slab_inject_failure(-1)
    assert pc.topology.slab_stats().objects == before


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
