# SPDX-License-Identifier: MIT
"""The Pythonic objects: Counter, CounterArray, LocalCount, PercpuRef.

Ownership.  Each object owns one C object through a *handle* (a SWIG
object or an ``ffi.gc`` cdata) whose destructor frees it.  ``close()``
only drops the object's reference to the handle: a call in flight on
another thread still holds one, so the C object is freed when that call
returns, never under it.  After ``close()`` every method raises
``ValueError`` (as file objects do); ``close()`` is idempotent, and the
objects are context managers that close on exit.  An object that is
simply dropped is freed by the garbage collector the same way.

Fast paths.  The tiny calls (``Counter.add``, ``LocalCount.release``,
``PercpuRef.get/put/tryget/tryget_live``) are stored on each instance as
the backend's own callable -- with SWIG, a bound C method: calling
``c.add(1)`` runs no Python frame at all.  The class-level methods of the
same names are what remains after ``close()``: they raise ValueError.
"""

import errno
import operator
import sys
import threading
import traceback
from collections import deque
from typing import Tuple

from . import _drivers
from ._errors import PercpuError

__all__ = [
    "Counter",
    "CounterArray",
    "LocalCount",
    "PercpuRef",
    "RateCheck",
    "Reference",
    "set_callback_error_hook",
]

_index = operator.index


def _default_callback_error_hook(exc, callback):
    print(f"percpu: exception in callback {callback!r} ignored:", file=sys.stderr)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


_callback_error_hook = _default_callback_error_hook


def set_callback_error_hook(hook):
    """Set the function called as ``hook(exc, callback)`` when a
    PercpuRef callback raises (an exception cannot travel back into C);
    None restores the default, which prints to stderr.  Returns the
    previous hook."""
    global _callback_error_hook
    previous = _callback_error_hook
    _callback_error_hook = hook or _default_callback_error_hook
    return previous


class _Owner:
    """What every object shares: its backend, close(), with-statement."""

    _backend = None  # per-backend subclasses (percpu.get_backend) set it
    _fast: Tuple[str, ...] = ()  # names of the per-instance fast paths

    def _open(self, backend):
        self._d = _drivers.resolve(backend if backend is not None else self._backend)
        self._h = None

    def _live(self):
        h = self._h
        if h is None:
            raise ValueError(f"operation on closed {type(self).__name__}")
        return h

    def _drop(self):
        """Forget the handle; return it (None if already closed)."""
        h, self._h = self._h, None
        for name in self._fast:
            self.__dict__.pop(name, None)
        return h

    @property
    def backend(self):
        """The backend this object uses: "swig" or "cffi"."""
        return self._d.name

    @property
    def closed(self):
        """True after close()."""
        return self._h is None

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()

    def __repr__(self):
        if self._h is None:
            return f"<percpu.{type(self).__name__} closed>"
        return f"<percpu.{type(self).__name__} {self._describe()} backend={self.backend}>"


# ---- the sysctl registry's Python side ----------------------------------
#
# The C tree holds raw pointers to the counters, so a registered counter
# must stay allocated: the registry keeps its Python owner alive until
# the name is unregistered or the counter closed.

_registry_lock = threading.Lock()
_registered = {}  # name -> Counter / CounterArray


def _register(obj, name, descr, writable, hidden):
    if not isinstance(name, str):
        raise TypeError("sysctl name must be a str")
    d = obj._d
    leaf_flags = (d.LEAF_WRITABLE if writable else 0) | (d.LEAF_HIDDEN if hidden else 0)
    with _registry_lock:
        obj._register_c(obj._live(), name, leaf_flags, descr or "")
        _registered[name] = obj
        obj._names.append(name)


def _unregister(name, driver):
    with _registry_lock:
        driver.sysctl_remove(name)
        obj = _registered.pop(name, None)
        if obj is not None:
            obj._names.remove(name)


def _unregister_all(obj):
    with _registry_lock:
        for name in obj._names:
            if _registered.get(name) is obj:
                del _registered[name]
            try:
                obj._d.sysctl_remove(name)
            except PercpuError:
                pass  # removed by name through another path meanwhile
        obj._names.clear()


def _registered_object(name):
    return _registered.get(name)


class _Registrable(_Owner):
    def register(self, name, *, descr="", writable=False, hidden=False):
        """Export under the dotted sysctl `name` (see percpu.sysctl).

        ``writable``: a write through the tree (which zeroes) is allowed.
        ``hidden`` (CTLFLAG_SKIP): left out of list(), names(), snapshot()
        and the Prometheus dump; still read, written and described by name.
        Raises PercpuError: EINVAL for a bad name, EEXIST if taken,
        ENOTDIR if a prefix of it is a leaf or it is a prefix of one.
        The registry keeps this object alive until unregistered or closed.
        """
        _register(self, name, descr, writable, hidden)

    @property
    def names(self):
        """The sysctl names this object is registered under."""
        return tuple(self._names)

    def close(self):
        """Unregister, then free the C object (once no call is in flight)."""
        if self._h is None:
            return
        _unregister_all(self)
        self._drop()


class Counter(_Registrable):
    """A per-CPU 64-bit counter: FreeBSD counter(9).

    ``add()`` touches only the calling CPU's word (an rseq add, no atomic
    instruction); ``value()`` sums all CPUs' words (a snapshot, O(possible
    CPUs)); ``zero()`` is exact with respect to concurrent adds.  Values
    are unsigned and wrap modulo 2**64, as in C; ``add`` takes a signed
    delta.  ``int(c)`` is ``c.value()``; ``c += n`` adds.
    """

    _fast = ("add",)

    def __init__(self, *, backend=None):
        self._open(backend)
        self._names = []
        self._h = self._d.counter_new()
        self.add = self._d.bind_counter_add(self._h)

    def add(self, n=1, /):
        """Add `n` (default 1) on the calling CPU.  Never blocks; keeps
        the GIL with the SWIG backend."""
        self._live()

    def value(self):
        """The sum over all CPUs (a racy snapshot)."""
        return self._d.counter_fetch(self._live())

    def zero(self):
        """Set to zero, exactly: every concurrent add is either erased
        or kept, never lost and never counted twice."""
        self._d.counter_fetch_and_zero(self._live())

    def fetch_and_zero(self):
        """Zero and return what was removed, in one exact step."""
        return self._d.counter_fetch_and_zero(self._live())

    def per_cpu(self):
        """Each possible CPU's share, as a list indexed by CPU (shares of a
        counter that was added to and subtracted from may be negative)."""
        h = self._live()
        return [self._d.counter_read_cpu(h, cpu) for cpu in range(self._d.nr_cpus())]

    def _register_c(self, h, name, leaf_flags, descr):
        self._d.counter_register(h, name, leaf_flags, descr)

    def __int__(self):
        return self.value()

    def __iadd__(self, n):
        self.add(n)
        return self

    def _describe(self):
        return f"value={self.value()}"


class CounterArray(_Registrable):
    """`n` per-CPU counters allocated together (FreeBSD COUNTER_ARRAY_*).

    ``a.add(i, n)``, ``a.value(i)`` or ``a[i]``, ``a.values()`` (or
    ``list(a)``), ``a.zero()`` (every element, exactly), ``len(a)``.
    Negative indexes count from the end, as for lists.  Registered under
    a sysctl name, the array is one leaf with one value per element.
    """

    def __init__(self, n, *, backend=None):
        n = _index(n)
        if n <= 0:
            raise ValueError("CounterArray needs at least one element")
        self._open(backend)
        self._names = []
        self._n = n
        self._h = self._d.array_new(n)

    def _slot(self, i):
        i = _index(i)
        if i < 0:
            i += self._n
            if i < 0:
                raise IndexError("index out of range")
        return i

    def add(self, i, n=1):
        """Add `n` (default 1) to element `i` on the calling CPU."""
        self._d.array_add(self._live(), self._slot(i), n)

    def value(self, i):
        """Element `i`'s sum over all CPUs."""
        return self._d.array_fetch(self._live(), self._slot(i))

    def values(self):
        """Every element's value, as a list."""
        return self._d.array_fetch_all(self._live(), self._n)

    def zero(self):
        """Zero every element (each exactly)."""
        self._d.array_zero(self._live())

    def _register_c(self, h, name, leaf_flags, descr):
        self._d.array_register(h, name, leaf_flags, descr)

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.values()[i]
        return self.value(i)

    def __iter__(self):
        return iter(self.values())

    def _describe(self):
        return f"values={self.values()}"


class RateCheck(_Owner):
    """FreeBSD counter_ratecheck(9): an MP-friendly events-per-second limit.

    ``check()`` counts one event (a per-CPU add: no atomic, never blocks)
    and returns ``0`` while the current second has seen at most ``limit``
    events, ``-1`` once it has seen more (the event still counts), and,
    to exactly one caller, the number of events of the second that just
    ended when that second was over the limit (> 0).  ``limit`` may be changed per call.
    Every event is counted once: the positive returns of over-limit
    seconds plus ``count`` add up to the calls made.  ``count`` is the
    current second's count so far.
    """

    def __init__(self, limit, *, backend=None):
        self.limit = self._check_limit(limit)
        self._open(backend)
        self._h = self._d.ratecheck_new()

    @staticmethod
    def _check_limit(limit):
        limit = _index(limit)
        if limit < 0:
            raise ValueError("RateCheck limit must be >= 0")
        return limit

    def check(self, limit=None):
        """Count one event against `limit` (default: the object's)."""
        limit = self.limit if limit is None else self._check_limit(limit)
        return self._d.ratecheck_check(self._live(), limit)

    @property
    def count(self):
        """Events counted in the current second so far (a snapshot)."""
        return self._d.ratecheck_count(self._live())

    def close(self):
        """Free the C object (idempotent)."""
        self._drop()

    def _describe(self):
        return f"limit={self.limit} count={self.count}"


class Reference:
    """One reference taken by ``LocalCount.acquire()`` or
    ``PercpuRef.acquire()``: ``release()`` it, or use it as a context
    manager (``with lc.acquire(): ...``), whose exit releases it.  It keeps
    the C object alive until released."""

    __slots__ = ("_owner", "_release")

    def __init__(self, owner, release):
        self._owner = owner
        self._release = release

    def release(self):
        """Drop this reference (once: a second call raises ValueError)."""
        release, self._release = self._release, None
        if release is None:
            raise ValueError("reference already released")
        release()

    @property
    def released(self):
        return self._release is None

    def __enter__(self):
        return self._owner

    def __exit__(self, exc_type, exc, tb):
        self.release()

    def __repr__(self):
        state = "released" if self._release is None else "held"
        return f"<percpu.Reference {state} of {type(self._owner).__name__}>"


class LocalCount(_Owner):
    """A CPU-local reference count: NetBSD localcount(9).

    ``acquire()`` and ``release()`` add +1/-1 to the calling CPU's word
    (no atomic, no shared cache line).  To destroy: make new acquires
    impossible (unpublish the object), then ``drain()`` -- it blocks until
    every reference is released -- or ``trydrain()``, which never waits.
    ``close()`` drains a live localcount, then frees it.

    Misuse becomes PercpuError(EINVAL) instead of the C library's abort:
    acquire once a drain began or a drain/trydrain succeeded (also when
    racing them on other threads: the acquire is then either counted and
    waited for, or refused); drain twice; drain with more releases than
    acquires.  A release with no acquire that no check can
    see still aborts when the drain finds the count negative.
    """

    _fast = ("release", "_acquire")

    def __init__(self, *, backend=None):
        self._open(backend)
        self._h = self._d.lc_new()
        self._acquire, self.release = self._d.bind_lc(self._h)

    def acquire(self):
        """Take a reference; returns a Reference (a context manager that
        releases it).  Raises PercpuError(EINVAL) once a drain began or a
        drain/trydrain succeeded, never aborts, even racing them; waits
        out a trydrain() that is deciding."""
        self._live()
        self._acquire()
        return Reference(self, self.release)

    def release(self):
        """Drop a reference (on any thread).  During a drain it takes the
        drain's lock briefly; otherwise it never blocks."""
        self._live()

    def drain(self):
        """Wait until every reference is released; afterwards only
        close().  Blocks, with the GIL released.  Acquires racing it are
        counted and waited for, or refused (EINVAL); to end, new acquires
        must stop."""
        self._d.lc_drain(self._live())

    def trydrain(self):
        """If no reference is held, make this final (as drain() does) and
        return True; otherwise return False and stay live (acquire works
        again).  Never waits for references.  Exact even with acquires
        racing it."""
        return self._d.lc_trydrain(self._live())

    @property
    def state(self):
        """"live", "draining", "drained" or "closed"."""
        h = self._h
        if h is None:
            return "closed"
        d = self._d
        s = d.lc_state(h)
        if s == d.LOCALCOUNT_LIVE:
            return "live"
        if s == d.LOCALCOUNT_DRAINED:
            return "drained"
        return "draining"

    def refcount(self):
        """Diagnostic only: the count at no particular instant (racy; 0
        once drained).  Never a reason to free anything."""
        return self._d.lc_refcnt(self._live())

    def close(self):
        """Drain if still live (blocks until every reference is
        released), then free."""
        h = self._h
        if h is None:
            return
        d = self._d
        if d.lc_state(h) == d.LOCALCOUNT_LIVE:
            try:
                d.lc_drain(h)
            except PercpuError:
                if d.lc_state(h) == d.LOCALCOUNT_LIVE:
                    raise  # a refused drain (negative count): stay open
                # another thread's close() drains it
        self._drop()

    def _describe(self):
        return f"state={self.state} refcount={self.refcount()}"


def _pop(q):
    try:
        return q.popleft()
    except IndexError:
        return None


class _RefEvents:
    """The callable C calls back for one PercpuRef (from any thread, with
    the GIL taken for it).  Holds the user's callables, never the
    PercpuRef itself, so a ref's callbacks can outlive its Python owner."""

    __slots__ = ("release", "kill_confirms", "switch_confirms", "freed", "_ev")

    def __init__(self, release, d):
        self.release = release
        self.kill_confirms = deque()
        self.switch_confirms = deque()
        self.freed = False
        self._ev = (d.EV_RELEASE, d.EV_CONFIRM_KILL, d.EV_CONFIRM_SWITCH, d.EV_FREED)

    def __call__(self, event):
        ev_release, ev_kill, ev_switch, ev_freed = self._ev
        if event == ev_release:
            callback = self.release
        elif event == ev_kill:
            callback = _pop(self.kill_confirms)
        elif event == ev_switch:
            callback = _pop(self.switch_confirms)
        else:
            if event == ev_freed:
                self.freed = True
            return
        if callback is None:
            return
        try:
            callback()
        except BaseException as exc:  # nothing may propagate into C
            _callback_error_hook(exc, callback)


class PercpuRef(_Owner):
    """A per-CPU reference count with a kill switch: Linux percpu_ref.

    Starts with one reference, the *initial* one, which belongs to this
    object and is dropped by ``kill()``.  ``get()``/``put()``/``tryget()``
    are per-CPU adds while the ref is in percpu mode; ``kill()`` switches
    it to atomic mode and drops the initial reference; when the count
    reaches zero, ``release`` is called -- exactly once per life, from
    whichever thread dropped the last reference (possibly the library's
    worker thread).  Callbacks take no arguments; exceptions they raise
    go to the hook set with ``percpu.set_callback_error_hook``.

    Flags: ``atomic`` (start in atomic mode), ``dead`` (start killed with
    count 0: ``reinit()`` to use), ``allow_reinit`` (keep the per-CPU
    memory so ``reinit()``/``switch_to_percpu()`` can go back).

    ``close()`` (or garbage collection) kills the ref if it is not dying
    yet; its memory is freed when the count reaches zero.  References that
    are never put keep it allocated, as in C.  ``put()`` only what you
    got: a put without a get aborts the process when the library finds
    the count below zero (a put on a released ref raises PercpuError).
    """

    _fast = ("get", "put", "tryget", "tryget_live")

    def __init__(self, release=None, *, atomic=False, dead=False,
                 allow_reinit=False, backend=None):
        if release is not None and not callable(release):
            raise TypeError("release must be callable or None")
        self._open(backend)
        d = self._d
        flags = ((d.REF_INIT_ATOMIC if atomic else 0) |
                 (d.REF_INIT_DEAD if dead else 0) |
                 (d.REF_ALLOW_REINIT if allow_reinit else 0))
        self._events = _RefEvents(release, d)
        self._h = d.ref_new(flags, self._events)
        self.get, self.put, self.tryget, self.tryget_live = d.bind_ref(self._h)

    def get(self, n=1, /):
        """Take `n` references; the caller holds one already (or knows the
        ref is live).  Never blocks.  PercpuError(EINVAL) on a ref whose
        count reached zero."""
        self._live()

    def put(self, n=1, /):
        """Drop `n` references; may run `release` on this thread."""
        self._live()

    def tryget(self, n=1, /):
        """Take `n` references unless the count is zero; True if taken.
        Succeeds on a killed ref whose count is not zero yet."""
        self._live()

    def tryget_live(self):
        """Take a reference unless the ref is dying or zero; True if taken."""
        self._live()

    def acquire(self, *, live=True):
        """Take a reference (tryget_live, or tryget with live=False) and
        return a Reference whose release() / with-exit puts it.  Raises
        PercpuError(ENOENT) if the ref is dead."""
        ok = self.tryget_live() if live else self.tryget()
        if not ok:
            raise PercpuError(errno.ENOENT, "percpu_ref is dead")
        return Reference(self, self.put)

    def _with_confirm(self, queue, call, confirm):
        h = self._live()
        if confirm is not None:
            if not callable(confirm):
                raise TypeError("confirm must be callable or None")
            queue.append(confirm)
        try:
            call(h, 1 if confirm is not None else 0)
        except BaseException:
            if confirm is not None:
                try:
                    queue.remove(confirm)
                except ValueError:
                    pass
            raise

    def kill(self, confirm=None):
        """Drop the initial reference and switch to atomic mode.
        `confirm` (optional) is called once every CPU sees the ref dead.
        PercpuError(EINVAL) if already dying.  May wait (GIL released)
        while a previous switch of this ref is in flight."""
        self._with_confirm(self._events.kill_confirms, self._d.ref_kill, confirm)

    def switch_to_atomic(self, confirm=None):
        """Switch to atomic mode (sticky until switch_to_percpu);
        `confirm` is called once every CPU sees it.  Returns at once."""
        self._with_confirm(self._events.switch_confirms,
                           self._d.ref_switch_to_atomic, confirm)

    def switch_to_atomic_sync(self):
        """Switch to atomic mode and wait for the switch to be confirmed
        (blocks, GIL released)."""
        self._d.ref_switch_to_atomic_sync(self._live())

    def switch_to_percpu(self):
        """Back to percpu mode (deferred to the next reinit if dying).
        PercpuError(EINVAL) unless created with allow_reinit (or atomic /
        dead, which imply it)."""
        self._d.ref_switch_to_percpu(self._live())

    def resurrect(self):
        """Bring a killed ref back to life with one (initial) reference.
        PercpuError(EINVAL) if it is not dying."""
        self._d.ref_resurrect(self._live())

    def reinit(self):
        """Start a ref whose count reached zero over, as after creation.
        PercpuError(EBUSY) unless it is dead with a zero count."""
        self._d.ref_reinit(self._live())

    def is_zero(self):
        """True if atomic with a zero count."""
        return self._d.ref_is_zero(self._live())

    def is_dying(self):
        """True once killed."""
        return self._d.ref_is_dying(self._live())

    @property
    def mode(self):
        """"percpu", "atomic" or "dead" (killed, which is atomic too)."""
        d = self._d
        bits = d.ref_mode(self._live())
        if bits & 2:
            return "dead"
        return "atomic" if bits & 1 else "percpu"

    @property
    def releases(self):
        """How many times `release` has run (once per life)."""
        return self._d.ref_releases(self._live())

    def close(self):
        """Kill if not dying, and let go: the C ref is freed once its count
        is zero.  May wait (GIL released) for a switch in flight."""
        self._drop()

    def _describe(self):
        return f"mode={self.mode} releases={self.releases}"
