# SPDX-License-Identifier: MIT
"""Misuse errors say what was wrong and on which object (docs/misuse.md).

A PercpuError keeps its errno and strerror (the errno's text); its
``detail``, which str() shows, names the operation, the reason and the
object ("percpu.LocalCount at 0x...").
"""

import errno
import os
import pickle
import re

import pytest

from percpu import PercpuError
from percpu._errors import raise_errno


def _at(obj):
    return re.escape(f"(percpu.{type(obj).__name__} at 0x{id(obj):x})")


def _raises(exc, eno, pattern, f, *args):
    with pytest.raises(exc) as info:
        f(*args)
    e = info.value
    if eno is not None:
        assert type(e) is PercpuError
        assert e.errno == eno
        assert e.strerror == os.strerror(eno)  # OSError's meaning, kept
        assert re.search(pattern, e.detail), e.detail
        assert str(e) == f"[Errno {eno}] {e.detail}"
    else:
        assert re.search(pattern, str(e)), str(e)
    return e


def test_localcount_messages(pc):
    lc = pc.LocalCount()
    lc.drain()
    _raises(PercpuError, errno.EINVAL,
            r"^LocalCount\.drain: a drain already began .*state: drained.*" + _at(lc),
            lc.drain)
    _raises(PercpuError, errno.EINVAL,
            r"^LocalCount\.trydrain: a drain already began .*" + _at(lc), lc.trydrain)
    _raises(PercpuError, errno.EINVAL,
            r"^LocalCount\.acquire: no new references once a drain began.*" + _at(lc),
            lc.acquire)
    lc.close()

    neg = pc.LocalCount()
    neg.release()  # more releases than acquires
    for op in ("drain", "trydrain"):
        _raises(PercpuError, errno.EINVAL,
                rf"^LocalCount\.{op}: more releases than acquires.*stays live.*" + _at(neg),
                getattr(neg, op))
    _raises(PercpuError, errno.EINVAL,
            r"^LocalCount\.close: more releases than acquires.*" + _at(neg), neg.close)
    neg.acquire()  # back to zero: the drain can succeed
    neg.close()


def test_percpu_ref_messages(pc):
    r = pc.PercpuRef()
    _raises(PercpuError, errno.EINVAL,
            r"^PercpuRef\.resurrect: not dying.*" + _at(r), r.resurrect)
    _raises(PercpuError, errno.EINVAL,
            r"^PercpuRef\.switch_to_percpu: created without allow_reinit.*" + _at(r),
            r.switch_to_percpu)
    _raises(PercpuError, errno.EBUSY,
            r"^PercpuRef\.reinit: not dead with a zero count "
            r"\(mode: (percpu|atomic), zero: False\) " + _at(r),
            r.reinit)
    _raises(TypeError, None,
            r"^PercpuRef\.kill: confirm must be callable or None, not int " + _at(r),
            r.kill, 3)
    assert not r.is_dying()
    r.get()  # keeps the ref above zero after the kill
    r.kill()
    _raises(PercpuError, errno.EINVAL,
            r"^PercpuRef\.kill: already dying.*" + _at(r), r.kill)
    _raises(PercpuError, errno.EINVAL,
            r"^PercpuRef\.kill: already dying.*" + _at(r), r.kill, lambda: None)
    _raises(PercpuError, errno.ENOENT,
            r"^PercpuRef\.acquire: the ref is dying or its count is zero.*" + _at(r),
            r.acquire)
    r.put()
    r.close()
    dead = pc.PercpuRef(dead=True)
    _raises(PercpuError, errno.ENOENT,
            r"^PercpuRef\.acquire: the count is zero.*" + _at(dead),
            lambda: dead.acquire(live=False))
    dead.close()


def test_closed_messages(pc):
    for obj, op, call in [
        (pc.Counter(), "value", lambda o: o.value()),
        (pc.Counter(), "add", lambda o: o.add(1)),
        (pc.CounterArray(1), "values", lambda o: o.values()),
        (pc.RateCheck(1), "check", lambda o: o.check()),
        (pc.LocalCount(), "acquire", lambda o: o.acquire()),
        (pc.PercpuRef(), "kill", lambda o: o.kill()),
        (pc.PercpuRef(), "get", lambda o: o.get()),
    ]:
        obj.close()
        name = type(obj).__name__
        _raises(ValueError, None,
                rf"^{name}\.{op}: operation on closed {name} " + _at(obj), call, obj)


def test_reference_released_twice(pc):
    lc = pc.LocalCount()
    ref = lc.acquire()
    ref.release()
    _raises(ValueError, None,
            r"^Reference\.release: already released \(percpu\.Reference at 0x[0-9a-f]+ "
            r"to percpu\.LocalCount at 0x", ref.release)
    lc.close()


def test_register_messages(pc):
    c = pc.Counter()
    c.register("msg.taken")
    other = pc.Counter()
    _raises(PercpuError, errno.EEXIST,
            r"^Counter\.register: counter_sysctl: msg\.taken: the name is taken " + _at(other),
            other.register, "msg.taken")
    _raises(PercpuError, errno.EINVAL,
            r"^Counter\.register: counter_sysctl: 'msg\.\.bad': empty component " + _at(other),
            other.register, "msg..bad")
    _raises(PercpuError, errno.ENOTDIR,
            r"^Counter\.register: counter_sysctl: msg\.taken\.sub: it and a registered leaf are a prefix",
            other.register, "msg.taken.sub")
    _raises(TypeError, None, r"^Counter\.register: the sysctl name must be a str, not int",
            other.register, 5)
    other.close()
    c.close()


def test_sysctl_messages(pc):
    s = pc.sysctl
    for op in ("read", "read_and_zero", "zero", "write", "describe", "unregister"):
        _raises(PercpuError, errno.ENOENT, rf"^sysctl\.{op}\('msg\.none'\): no such leaf$",
                getattr(s, op), "msg.none")
    c = pc.Counter()
    c.register("msg.ro")
    for op in ("write", "zero", "read_and_zero"):
        _raises(PercpuError, errno.EPERM,
                rf"^sysctl\.{op}\('msg\.ro'\): read-only leaf .*writable=True",
                getattr(s, op), "msg.ro")
    _raises(ValueError, None, r"^sysctl\.write\('msg\.ro'\): .* only be written with 0",
            s.write, "msg.ro", 1)
    _raises(TypeError, None, r"^sysctl\.register\('msg\.x'\): only a Counter",
            s.register, "msg.x", pc.LocalCount())
    c.close()


def test_topology_messages(pc):
    t = pc.topology
    n = t.possible_cpus()
    for op in ("node_of_cpu", "memory_node_of_cpu", "unit_placement"):
        _raises(PercpuError, errno.EINVAL,
                rf"^topology\.{op}\(100000\): no such CPU known \(possible CPUs are 0\.\.{n - 1}\)",
                getattr(t, op), 100000)


def test_raise_errno_uses_the_errno_module():
    with pytest.raises(IndexError, match="^index out of range$"):
        raise_errno(-errno.ERANGE)
    with pytest.raises(IndexError, match=r"^X\.y: index out of range$"):
        raise_errno(-errno.ERANGE, "X.y")
    with pytest.raises(PercpuError) as info:
        raise_errno(-errno.EBUSY)
    assert info.value.errno == errno.EBUSY and info.value.detail is None
    assert str(info.value) == f"[Errno {errno.EBUSY}] {os.strerror(errno.EBUSY)}"


def test_detail_survives_pickling(pc):
    lc = pc.LocalCount()
    lc.drain()
    with pytest.raises(PercpuError) as info:
        lc.drain()
    e = pickle.loads(pickle.dumps(info.value))
    assert type(e) is PercpuError and e.errno == errno.EINVAL
    assert e.detail == info.value.detail and str(e) == str(info.value)
    lc.close()
