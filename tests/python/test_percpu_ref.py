# SPDX-License-Identifier: MIT
"""PercpuRef: the whole API, callbacks (from any thread), misuse."""

import errno
import threading

import pytest

import percpu
from percpu import PercpuError, Reference
from conftest import Recorder, settle, wait_for


def fast(pc):
    return pc.topology.fast_mode_available()


def test_lifecycle_release_once(pc):
    rel = Recorder()
    r = pc.PercpuRef(rel)
    assert r.mode == ("percpu" if fast(pc) else "atomic")
    assert not r.is_dying() and not r.is_zero() and r.releases == 0
    r.get()
    r.get(3)
    r.put(2)
    r.put(2)
    assert r.tryget() and r.tryget(2)
    r.put(3)
    assert r.tryget_live()
    r.put()
    assert rel.count == 0
    r.kill()
    assert r.is_dying()
    assert wait_for(lambda: rel.count == 1)
    assert r.releases == 1 and r.is_zero() and r.mode == "dead"
    assert not r.tryget() and not r.tryget_live()
    r.close()


def test_release_waits_for_last_put(pc):
    rel = Recorder()
    r = pc.PercpuRef(rel)
    r.get()
    r.kill()
    assert r.tryget()                  # dying but not zero: tryget works
    r.put()
    assert not r.tryget_live()         # ...tryget_live does not
    assert wait_for(lambda: r.mode == "dead")
    assert rel.count == 0              # one reference still held
    r.put()
    assert wait_for(lambda: rel.count == 1)
    r.close()


def test_use_after_release_raises(pc):
    r = pc.PercpuRef()
    r.kill()
    assert wait_for(lambda: r.releases == 1)
    for call in (r.get, r.put, lambda: r.get(2)):
        with pytest.raises(PercpuError) as info:
            call()
        assert info.value.errno == errno.EINVAL
    with pytest.raises(PercpuError) as info:
        r.kill()                        # kill twice
    assert info.value.errno == errno.EINVAL
    r.close()


def test_acquire_guard(pc):
    r = pc.PercpuRef()
    with r.acquire() as owner:
        assert owner is r
    g = r.acquire(live=False)
    assert isinstance(g, Reference)
    r.kill()
    with pytest.raises(PercpuError) as info:
        r.acquire()                     # live: refused once dying
    assert info.value.errno == errno.ENOENT
    with r.acquire(live=False):         # not zero yet: g holds one
        pass
    g.release()
    assert wait_for(r.is_zero)
    with pytest.raises(PercpuError):
        r.acquire(live=False)
    r.close()


def test_confirm_kill_and_release_order(pc):
    events = []
    r = pc.PercpuRef(lambda: events.append("release"))
    r.kill(confirm=lambda: events.append("confirm"))
    assert wait_for(lambda: len(events) == 2)
    assert events == ["confirm", "release"]
    r.close()


def test_switch_to_atomic_and_back(pc):
    r = pc.PercpuRef(allow_reinit=True)
    confirmed = Recorder()
    r.switch_to_atomic(confirm=confirmed)
    assert wait_for(lambda: confirmed.count == 1)
    assert r.mode == "atomic"
    r.get()
    r.put()
    r.switch_to_percpu()
    assert r.mode == ("percpu" if fast(pc) else "atomic")
    r.switch_to_atomic_sync()
    assert r.mode == "atomic"
    r.switch_to_percpu()
    r.close()


def test_switch_to_percpu_needs_allow_reinit(pc):
    r = pc.PercpuRef()
    r.switch_to_atomic_sync()
    with pytest.raises(PercpuError) as info:
        r.switch_to_percpu()
    assert info.value.errno == errno.EINVAL
    assert r.mode == "atomic"
    r.close()


def test_switch_confirm_when_already_atomic(pc):
    r = pc.PercpuRef(atomic=True)
    assert r.mode == "atomic"
    confirmed = Recorder()
    r.switch_to_atomic(confirm=confirmed)
    assert wait_for(lambda: confirmed.count == 1)
    r.close()


def test_resurrect(pc):
    rel = Recorder()
    r = pc.PercpuRef(rel, allow_reinit=True)
    with pytest.raises(PercpuError) as info:
        r.resurrect()                   # not dying
    assert info.value.errno == errno.EINVAL
    r.get()                             # keep it from reaching zero
    r.kill()
    r.resurrect()
    assert not r.is_dying()
    r.put()
    assert rel.count == 0
    r.kill()
    assert wait_for(lambda: rel.count == 1)
    r.close()


def test_reinit_starts_a_new_life(pc):
    rel = Recorder()
    r = pc.PercpuRef(rel, allow_reinit=True)
    with pytest.raises(PercpuError) as info:
        r.reinit()                      # live, not zero
    assert info.value.errno == errno.EBUSY
    r.kill()
    assert wait_for(lambda: rel.count == 1)
    r.reinit()
    assert r.mode == ("percpu" if fast(pc) else "atomic")
    r.get()
    r.put()
    r.kill()
    assert wait_for(lambda: rel.count == 2)
    assert r.releases == 2
    r.close()


def test_born_dead(pc):
    rel = Recorder()
    r = pc.PercpuRef(rel, dead=True)
    assert r.mode == "dead" and r.is_zero() and r.is_dying()
    with pytest.raises(PercpuError):
        r.get()
    assert not r.tryget()
    r.reinit()
    assert not r.is_dying()
    r.get()
    r.put()
    r.kill()
    assert wait_for(lambda: rel.count == 1)
    r.close()


def test_release_runs_on_the_putting_thread(pc):
    """A put from another Python thread that reaches zero runs the
    release callback right there."""
    rel = Recorder()
    r = pc.PercpuRef(rel, atomic=True)  # atomic: the put itself hits zero
    r.get()
    r.kill()
    t = threading.Thread(target=r.put)
    t.start()
    t.join()
    assert rel.calls == [t.ident]
    r.close()


def test_callbacks_from_the_library_worker(pc):
    """In percpu mode the confirm of a switch_to_atomic (which does not
    wait) comes from the library's own (non-Python) worker thread."""
    if not fast(pc):
        pytest.skip("atomic mode: no switch worker involved")
    main = threading.get_ident()
    conf_threads, rel = [], Recorder()

    def confirm():
        conf_threads.append(threading.get_ident())

    r = pc.PercpuRef(rel)
    r.switch_to_atomic(confirm=confirm)
    assert wait_for(lambda: len(conf_threads) == 1)
    assert conf_threads[0] != main
    r.kill()  # atomic already: released inside, in this thread
    assert rel.calls == [main]
    r.close()


def test_kill_confirms_and_releases_in_the_calling_thread(pc):
    """kill() does the switch itself: its confirm and, with no other
    reference held, the release have run in this thread when it returns."""
    main = threading.get_ident()
    conf_threads, rel = [], Recorder()
    r = pc.PercpuRef(rel)
    r.kill(confirm=lambda: conf_threads.append(threading.get_ident()))
    assert conf_threads == [main]
    assert rel.calls == [main]
    r.close()


def test_callback_exceptions_go_to_the_hook(pc):
    seen = []

    def boom():
        raise RuntimeError("from release")

    previous = percpu.set_callback_error_hook(lambda exc, cb: seen.append((exc, cb)))
    try:
        r = pc.PercpuRef(boom)
        r.kill()
        assert wait_for(lambda: len(seen) == 1)
        exc, cb = seen[0]
        assert isinstance(exc, RuntimeError) and cb is boom
        assert r.releases == 1
        r.close()
    finally:
        percpu.set_callback_error_hook(previous)


def test_default_callback_hook_prints(pc, capfd):
    def boom():
        raise RuntimeError("printed, not raised")
    r = pc.PercpuRef(boom, atomic=True)
    r.kill()
    assert r.releases == 1  # released synchronously: atomic mode
    err = capfd.readouterr().err
    assert "exception in callback" in err and "printed, not raised" in err
    r.close()


def test_bad_arguments(pc):
    with pytest.raises(TypeError):
        pc.PercpuRef(release=42)
    r = pc.PercpuRef()
    with pytest.raises(TypeError):
        r.kill(confirm=3)
    assert not r.is_dying()             # a refused kill changes nothing
    with pytest.raises(OverflowError):
        r.get(-1)
    with pytest.raises(TypeError):
        r.put(1.0)
    r.close()


def test_close_kills_and_release_follows(pc):
    rel = Recorder()
    r = pc.PercpuRef(rel)
    r.close()
    assert wait_for(lambda: rel.count == 1)
    r.close()
    for call in (r.get, r.put, r.tryget, r.tryget_live, r.kill, r.is_zero,
                 lambda: r.mode, r.switch_to_atomic_sync, r.reinit):
        with pytest.raises(ValueError, match="closed PercpuRef"):
            call()


def test_gc_kills_and_frees(pc):
    d = pc.driver
    base = d.live_objects()
    rel = Recorder()
    pc.PercpuRef(rel)                   # dropped at once
    assert wait_for(lambda: rel.count == 1)
    assert settle(d, base)


def test_close_with_outstanding_reference(pc):
    """close() kills; the outstanding reference keeps the C ref alive and
    its put (through the Reference) releases and frees it."""
    d = pc.driver
    base = d.live_objects()
    rel = Recorder()
    r = pc.PercpuRef(rel)
    g = r.acquire()
    r.close()
    del r
    assert wait_for(lambda: d.live_objects() == base + 1)  # 10 s: a hang guard
    assert rel.count == 0
    g.release()
    assert wait_for(lambda: rel.count == 1)
    del g
    assert settle(d, base)


def test_repr(pc):
    r = pc.PercpuRef()
    assert repr(r).startswith("<percpu.PercpuRef mode=")
    assert f"backend={pc.name}" in repr(r)
    r.close()
    assert repr(r) == "<percpu.PercpuRef closed>"


# Issue 13, bug 3: a kill whose switch worker thread cannot be started
# aborted the process ("cannot start the switch worker thread").  The
# child process below may start no thread: RLIMIT_NPROC 0, which the
# kernel enforces on every user but root, so root first becomes nobody
# (after the imports: the runfiles may not be readable by nobody).  Where
# nobody does not exist (Bazel's sandbox maps root only: EINVAL), a
# seccomp filter gives thread creation the same EAGAIN.  It proves the
# limit holds (a thread start fails), then kills, switches and reinits
# refs and checks confirm-before-release, exactly once each.
_NO_THREAD_CHILD = r"""
import ctypes, os, resource, struct, sys, threading
import percpu

pc = percpu.get_backend(sys.argv[1])


def deny_threads_by_seccomp():
    # x86-64: clone3, and clone with CLONE_THREAD -> EAGAIN; else allow.
    def op(code, k, jt=0, jf=0):
        return struct.pack("HBBI", code, jt, jf, k)
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    code = b"".join([
        op(ld, 4), op(jeq, 0xC000003E, 0, 6),          # arch x86-64
        op(ld, 0), op(jeq, 435, 3, 0), op(jeq, 56, 0, 3),  # clone3, clone
        op(ld, 16), op(jset, 0x10000, 0, 1),           # args[0] & CLONE_THREAD
        op(ret, 0x00050000 | 11),                      # ERRNO(EAGAIN)
        op(ret, 0x7FFF0000),                           # ALLOW
    ])
    buf = ctypes.create_string_buffer(code, len(code))

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Prog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):
        sys.exit("seccomp filter: " + os.strerror(ctypes.get_errno()))


try:
    if os.geteuid() == 0:
        os.setresuid(65534, 65534, 65534)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
except OSError as exc:
    print("no nobody (%s): a seccomp filter denies threads" % exc, file=sys.stderr)
    deny_threads_by_seccomp()
try:
    threading.Thread(target=lambda: None).start()
except RuntimeError:
    pass
else:
    sys.exit("the limit is not in force: a thread started")

events = []
r = pc.PercpuRef(lambda: events.append("release"))
r.get()
r.kill(confirm=lambda: events.append("confirm"))
assert events == ["confirm"], events          # no worker: confirmed inline
r.put()
assert events == ["confirm", "release"], events
assert r.is_zero() and r.releases == 1
r.close()

events.clear()
s = pc.PercpuRef(lambda: events.append("release"), allow_reinit=True)
s.switch_to_atomic(confirm=lambda: events.append("switched"))
assert events == ["switched"], events
assert s.mode == "atomic"
s.switch_to_percpu()
s.switch_to_atomic_sync()
s.switch_to_percpu()
s.kill()
assert events == ["switched", "release"], events
s.reinit()
s.kill()
assert events == ["switched", "release", "release"], events
s.close()
print("ok")
"""


def test_kill_without_a_thread_for_the_worker_does_not_abort(pc):
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", _NO_THREAD_CHILD, pc.name],
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", (
        f"status {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}")
    assert "cannot start" not in res.stderr
