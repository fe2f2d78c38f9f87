# SPDX-License-Identifier: MIT
"""pserialize(9) from Python: read sections, Pserialize.perform(), and
LocalCount.trydrain()'s grace period (the trydrain post's protocol).

Every interleaving a verdict needs is forced: a reader parks inside its
read section until it sees the writer's call return, or until a bound
elapses.  The verdict is what the reader saw -- never how long anything
took: a correct writer cannot return while the reader is inside, so the
reader always waits out its bound; a writer that does not wait is seen
returning (the in-test controls run the same harness with such a
writer).  The writers run on helper threads joined with a generous
limit; a deadlock that holds the GIL (a writer keeping the GIL the
reader needs to leave its section) cannot be joined from Python, so a
faulthandler watchdog -- a C thread, no GIL -- ends the process with
every thread's traceback instead of letting it hang.
"""

import errno
import faulthandler
import gc
import sys
import threading

import pytest

from conftest import wait_for

PARK = 1.0  # how long a parked reader waits to see the writer return
LIMIT = 30.0  # a writer that has not returned by then is deadlocked


def _real_stderr(config):
    """The process's stderr: pytest's capture redirects fd 2 during a
    test; its faulthandler plugin keeps a copy of the original."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_key
        return config.stash[fault_handler_stderr_key]
    except (ImportError, KeyError):
        return sys.__stderr__


@pytest.fixture(autouse=True)
def watchdog(request):
    faulthandler.dump_traceback_later(2 * LIMIT, exit=True,
                                      file=_real_stderr(request.config))
    yield
    faulthandler.cancel_dump_traceback_later()


def _run(target, *args):
    """target(*args) on a daemon thread; returns (thread, result dict)."""
    out = {}

    def body():
        try:
            out["value"] = target(*args)
        except BaseException as e:  # reported by the caller
            out["error"] = e
        finally:
            out["done"] = True

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def _joined(t, out):
    t.join(LIMIT)
    assert not t.is_alive(), "the writer never returned (deadlock?)"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def writer_returned_while_reader_inside(pc, writer):
    """A reader enters a read section and parks; then `writer()` runs on
    another thread.  True if the reader, still inside, saw it return."""
    inside, returned = threading.Event(), threading.Event()
    seen = {}

    def reader():
        with pc.read_section():
            inside.set()
            seen["returned"] = returned.wait(PARK)

    r = threading.Thread(target=reader, daemon=True)
    r.start()
    assert inside.wait(LIMIT)

    def write():
        writer()
        returned.set()

    _joined(*_run(write))
    r.join(LIMIT)
    assert not r.is_alive()
    return seen["returned"]


# ---- read sections -------------------------------------------------------


def test_read_sections_nest_and_exit_on_exceptions(pc):
    assert not pc.in_read_section()
    with pc.read_section() as outer:
        assert outer.open and pc.in_read_section()
        with pc.read_section():
            with pc.read_section():
                assert pc.in_read_section()
        assert pc.in_read_section()
    assert not outer.open and not pc.in_read_section()
    with pytest.raises(KeyError):
        with pc.read_section():
            with pc.read_section():
                raise KeyError("inside")
    assert not pc.in_read_section()
    # every section exited: a perform waits for nobody (a leaked enter
    # would make it wait forever: _joined fails instead)
    with pc.Pserialize() as psz:
        _joined(*_run(psz.perform))


def test_sections_of_both_backends_are_one(pc):
    """Read sections are process-wide: another backend sees them."""
    import percpu
    other = percpu.get_backend("cffi" if pc.name == "swig" else "swig")
    with pc.read_section():
        assert other.in_read_section()
        with other.read_section():
            pass
    assert not other.in_read_section()


# ---- perform -------------------------------------------------------------


def test_perform_waits_for_a_reader_on_another_thread(pc):
    with pc.Pserialize() as psz:
        assert not writer_returned_while_reader_inside(pc, psz.perform)
        # control: the harness sees a writer that does not wait
        assert writer_returned_while_reader_inside(pc, lambda: None)


def test_perform_does_not_wait_for_readers_that_started_after_it(pc):
    """Reader A holds a section; a perform starts and waits for it; once
    the perform has flipped the epoch (visible to us), reader B enters
    and parks; A exits.  The perform must return while B is inside."""
    d = pc.driver
    a_inside, a_go = threading.Event(), threading.Event()
    b_inside, returned = threading.Event(), threading.Event()
    seen = {}

    def reader_a():
        with pc.read_section():
            a_inside.set()
            a_go.wait(LIMIT)

    def reader_b():
        with pc.read_section():
            b_inside.set()
            seen["returned"] = returned.wait(LIMIT)

    with pc.Pserialize() as psz:
        psz.perform()  # the per-CPU counts exist; the epoch is settled
        a = threading.Thread(target=reader_a, daemon=True)
        a.start()
        assert a_inside.wait(LIMIT)
        epoch = d.read_epoch()

        def write():
            psz.perform()
            returned.set()

        w = _run(write)
        # The perform waits out the other parity (empty), flips the
        # epoch, then waits for A's parity: B, entering after the flip,
        # counts in the new one.
        assert wait_for(lambda: d.read_epoch() != epoch, LIMIT), \
            "the perform never flipped the epoch"
        assert not returned.is_set()  # A is still inside
        b = threading.Thread(target=reader_b, daemon=True)
        b.start()
        assert b_inside.wait(LIMIT)
        a_go.set()
        a.join(LIMIT)
        _joined(*w)
        b.join(LIMIT)
        assert seen["returned"], "perform waited for a reader that began after its flip"


# ---- misuse --------------------------------------------------------------


def test_perform_inside_a_read_section_raises(pc):
    with pc.Pserialize() as psz:
        with pc.read_section():
            with pytest.raises(pc.PercpuError) as e:
                psz.perform()
        assert e.value.errno == errno.EDEADLK
        assert "Pserialize.perform" in str(e.value)
        assert "inside a read section" in str(e.value)
        assert "percpu.Pserialize at 0x" in str(e.value)
        psz.perform()  # nothing was done: usable outside
    with pytest.raises(ValueError, match="Pserialize.perform: operation on closed"):
        psz.perform()


def test_trydrain_and_drain_inside_a_read_section_raise(pc):
    lc = pc.LocalCount()
    with pc.read_section():
        for op in ("trydrain", "drain"):
            with pytest.raises(pc.PercpuError) as e:
                getattr(lc, op)()
            assert e.value.errno == errno.EDEADLK
            assert f"LocalCount.{op}" in str(e.value)
            assert "inside a read section" in str(e.value)
        assert lc.state == "live"
        lc.acquire().release()  # still live: nothing was begun
    assert lc.trydrain() is True
    lc.close()


def test_read_section_misuse_raises(pc):
    rs = pc.read_section()
    with rs:
        with pytest.raises(pc.PercpuError, match="open already"):
            rs.__enter__()
    with pytest.raises(pc.PercpuError, match="not open"):
        rs.__exit__(None, None, None)
    # out of order: the inner one must exit first; both stay usable
    outer, inner = pc.read_section(), pc.read_section()
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(pc.PercpuError, match="innermost"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)
    assert not pc.in_read_section()
    # exit on another thread: refused, the section stays open here
    rs = pc.read_section()
    rs.__enter__()
    t, out = _run(rs.__exit__, None, None, None)
    t.join(LIMIT)
    assert isinstance(out.get("error"), pc.PercpuError)
    assert "thread that entered it" in str(out["error"])
    assert pc.in_read_section()
    rs.__exit__(None, None, None)
    assert not pc.in_read_section()
    # the C check under it: an exit value no open section has
    with pytest.raises(pc.PercpuError) as e:
        pc.driver.read_exit(0)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(pc.PercpuError):
        pc.driver.read_exit(7)


def test_a_localcount_freed_inside_a_read_section(pc):
    """The garbage collector may free a live LocalCount anywhere, also
    inside a read section: no grace period there (it would abort in C),
    the exact drain frees it instead."""
    d = pc.driver
    leaked = d.leaked_objects()
    base = d.live_objects()
    with pc.read_section():
        lc = pc.LocalCount()
        lc.acquire().release()
        assert d.live_objects() == base + 1
        del lc
        gc.collect()
        assert d.live_objects() == base
    assert d.leaked_objects() == leaked


def test_freeing_a_localcount_waits_without_the_gil(pc):
    """A live LocalCount freed while another thread is inside a read
    section: free's trydrain waits out that section, which needs the GIL
    to exit.  (SWIG's destructor releases it; cffi always does.)"""
    d = pc.driver
    base = d.live_objects()

    def drop():
        lc = pc.LocalCount()
        lc.acquire().release()
        del lc
        gc.collect()

    assert not writer_returned_while_reader_inside(pc, drop)
    assert d.live_objects() == base


# ---- the trydrain post's protocol ----------------------------------------


class Obj:
    def __init__(self, pc):
        self.lc = pc.LocalCount()
        self.dying = False


def lookup(pc, table, key, after_check=None):
    """The reader: find, check DYING, acquire -- in one read section."""
    with pc.read_section():
        obj = table.get(key)
        if obj is None or obj.dying:
            return None
        if after_check:
            after_check()
        return obj.lc.acquire()


def trydetach(pc, psz, table, key):
    """The writer: DYING, trydrain, and only then unpublish and free."""
    obj = table[key]
    obj.dying = True  # lookups that start now skip it
    if not obj.lc.trydrain():  # waits out lookups in flight
        obj.dying = False
        return errno.EBUSY
    del table[key]
    psz.perform()
    obj.lc.close()
    return 0


@pytest.mark.parametrize("nreaders", [1, 3])
def test_trydrain_waits_for_lookups_past_their_dying_check(pc, nreaders):
    """nreaders lookups pass their DYING check and park inside their
    read sections; another thread's trydetach marks the object dying and
    trydrains.  The trydrain must wait them out, count their references
    and fail: no lookup may see it return while parked."""
    psz = pc.Pserialize()
    table = {"k": Obj(pc)}
    checked = threading.Semaphore(0)
    trydrain_called, returned = threading.Event(), threading.Event()
    seen, refs = [], []

    def park():
        checked.release()
        assert trydrain_called.wait(LIMIT)
        seen.append(returned.wait(PARK))

    def reader():
        refs.append(lookup(pc, table, "k", park))

    readers = [threading.Thread(target=reader, daemon=True) for _ in range(nreaders)]
    for r in readers:
        r.start()
    for _ in readers:
        assert checked.acquire(timeout=LIMIT)

    def writer():
        trydrain_called.set()
        rc = trydetach(pc, psz, table, "k")
        returned.set()
        return rc

    assert _joined(*_run(writer)) == errno.EBUSY
    for r in readers:
        r.join(LIMIT)
    assert seen == [False] * nreaders, "trydrain returned while a lookup was inside"
    assert len(refs) == nreaders and all(r is not None for r in refs)
    obj = table["k"]
    assert not obj.dying and obj.lc.state == "live"
    assert obj.lc.refcount() == nreaders
    # a lookup now succeeds again; after every release the detach succeeds
    extra = lookup(pc, table, "k")
    assert extra is not None
    for r in refs + [extra]:
        r.release()
    assert trydetach(pc, psz, table, "k") == 0
    assert "k" not in table and obj.lc.closed
    assert lookup(pc, table, "k") is None
    psz.close()


# ---- acquire vs a trydrain that already summed (issue 15) --------------


def test_acquire_parked_before_its_call_while_trydrain_succeeds(pc):
    """An acquire that has passed every Python-level check (the object is
    open) and parks right before the binding call, while a trydrain
    succeeds: the call must refuse (EINVAL) and take nothing.  The
    decision is the add itself (localcount_tryacquire, see
    percpu_py_localcount_acquire): no flag read earlier can let it in."""
    lc = pc.LocalCount()
    at_call, go = threading.Event(), threading.Event()
    call = lc._acquire  # the binding's own callable (a fast path)

    def parked():
        at_call.set()
        assert go.wait(LIMIT)
        call()

    lc._acquire = parked
    t, out = _run(lc.acquire)
    assert at_call.wait(LIMIT)
    assert lc.trydrain() is True  # nothing held yet: final
    go.set()
    t.join(LIMIT)
    assert not t.is_alive()
    e = out.get("error")
    assert isinstance(e, pc.PercpuError) and e.errno == errno.EINVAL, out
    assert "LocalCount.acquire" in str(e)
    assert lc.state == "drained" and lc.refcount() == 0
    lc.close()
    # control: parked the same way, but the trydrain runs after the call
    lc = pc.LocalCount()
    call = lc._acquire
    at_call.clear()
    go.clear()
    lc._acquire = parked
    t, out = _run(lc.acquire)
    assert at_call.wait(LIMIT)
    go.set()
    t.join(LIMIT)
    assert "value" in out and lc.trydrain() is False
    out["value"].release()
    assert lc.trydrain() is True
    lc.close()
