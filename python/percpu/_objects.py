# SPDX-License-Identifier: MIT
"""The Pythonic objects: Counter, CounterArray, LocalCount, PercpuRef,
Pserialize and read sections.

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

Errors.  A failure says which operation on which object failed and why:
``PercpuError(EINVAL, "LocalCount.drain: a drain already began
(percpu.LocalCount at 0x7f...)")``.  The fast paths above are the
binding's own callables, so their errors are the binding's (an
OverflowError for an out-of-range ``n``, a PercpuError for a get/put on a
released ref) and name no object.

Copies.  No object can be copied or pickled: each owns a C object (per-CPU
memory, sysctl names, references) that exactly one owner may free, so
``copy.copy``, ``copy.deepcopy`` and ``pickle`` raise TypeError.  Create
a new object instead (and, for a value, copy ``c.value()``).
"""

import errno
import operator
import sys
import threading
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Tuple

from . import _drivers
from ._errors import PercpuError, error, with_context

__all__ = [
    "Counter",
    "CounterArray",
    "LocalCount",
    "PercpuRef",
    "Pserialize",
    "RateCheck",
    "ReadSection",
    "Reference",
    "in_read_section",
    "read_section",
    "set_callback_error_hook",
]

_index = operator.index

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
SIZE_MAX = (1 << 64) - 1


def _int64(value, where, obj, what="n"):
    """`value` as an int64_t argument, or OverflowError saying where."""
    value = _index(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise OverflowError(f"{where}: {what}={value} is outside the int64 range "
                            f"-2**63..2**63-1 ({obj._ident()})")
    return value


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


class _NotCopyable:
    """copy.copy, copy.deepcopy and pickle refused, with the TypeError
    that the class's _no_copy(how) words (what it holds, what to do)."""

    __slots__ = ()

    def __copy__(self):
        raise self._no_copy("copied")

    def __deepcopy__(self, memo):
        raise self._no_copy("deep-copied")

    def __reduce_ex__(self, protocol):
        raise self._no_copy("pickled")


class _Owner(_NotCopyable):
    """What every object shares: its backend, close(), with-statement."""

    _backend = None  # per-backend subclasses (percpu.get_backend) set it
    _fast: Tuple[str, ...] = ()  # names of the per-instance fast paths

    def _open(self, backend):
        self._d = _drivers.resolve(backend if backend is not None else self._backend)
        self._h = None

    def _live(self, op=None):
        h = self._h
        if h is None:
            name = type(self).__name__
            where = f"{name}.{op}: " if op else ""
            raise ValueError(f"{where}operation on closed {name} ({self._ident()})")
        return h

    def _ident(self):
        """Which object, for error messages: class and address."""
        return f"percpu.{type(self).__name__} at 0x{id(self):x}"

    def _why(self, op, err):
        """The reason C refused `op` with errno `err` (None: its text)."""
        return None

    def _call(self, op, f, *args):
        """``f(handle, *args)``, a failure re-raised saying `op`, why and
        on which object."""
        h = self._live(op)
        try:
            return f(h, *args)
        except (PercpuError, IndexError) as e:
            raise self._error(op, e) from None

    def _error(self, op, exc, why=None):
        if why is None and isinstance(exc, PercpuError):
            why = self._why(op, exc.errno)
        return with_context(exc, f"{type(self).__name__}.{op}", why, self._ident())

    def _no_copy(self, how):
        name = type(self).__name__
        return TypeError(
            f"percpu.{name} cannot be {how}: it owns a C object (per-CPU "
            f"memory{self._owns}) that only this owner may free; create a "
            f"new {name} instead")

    _owns = ""

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
        self._live("__enter__")
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


_REGISTER_WHY = {
    errno.EINVAL: "bad sysctl name {name!r}: components of [A-Za-z0-9_] joined by dots",
    errno.EEXIST: "the sysctl name {name!r} is taken",
    errno.ENOTDIR: "{name!r} and an existing leaf are a prefix of each other",
}


def _label_str(obj, what, s):
    """`s` checked as a label string C can carry: a str, no NUL, encodable
    as UTF-8 (no lone surrogates).  TypeError / ValueError otherwise."""
    where = f"{type(obj).__name__}.register"
    if not isinstance(s, str):
        raise TypeError(f"{where}: {what} must be a str, not "
                        f"{type(s).__name__} ({obj._ident()})")
    if "\0" in s:
        raise ValueError(f"{where}: {what} {s!r} contains a NUL character "
                         f"({obj._ident()})")
    try:
        s.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{where}: {what} {s!r} is not valid UTF-8 (a lone "
                         f"surrogate) ({obj._ident()})") from None
    return s


def _const_labels(obj, labels):
    """A dict of constant labels as the flat (name, value, ...) tuple."""
    if labels is None:
        return None
    if not isinstance(labels, Mapping):
        raise TypeError(f"{type(obj).__name__}.register: labels must be a dict "
                        f"of str to str, not {type(labels).__name__} "
                        f"({obj._ident()})")
    flat = []
    for k, v in labels.items():
        flat.append(_label_str(obj, "a label name", k))
        flat.append(_label_str(obj, f"the value of label {k!r}", v))
    return tuple(flat) if flat else None


def _element_labels(obj, element_label, element_values):
    """(element_label, element_values as a tuple) checked; Nones kept."""
    if element_label is not None:
        _label_str(obj, "element_label", element_label)
    if element_values is None:
        return element_label, None
    if isinstance(element_values, (str, bytes)) or not isinstance(
            element_values, Sequence):
        raise TypeError(f"{type(obj).__name__}.register: element_values must "
                        f"be a sequence of str (one per element), not "
                        f"{type(element_values).__name__} ({obj._ident()})")
    values = tuple(_label_str(obj, f"element_values[{i}]", v)
                   for i, v in enumerate(element_values))
    if len(values) != len(obj):
        raise ValueError(f"{type(obj).__name__}.register: {len(values)} "
                         f"element_values for {len(obj)} elements "
                         f"({obj._ident()})")
    return element_label, values


def _register(obj, name, descr, writable, hidden, gauge, labels, *elements):
    if not isinstance(name, str):
        raise TypeError(f"{type(obj).__name__}.register: the sysctl name must be "
                        f"a str, not {type(name).__name__} ({obj._ident()})")
    d = obj._d
    leaf_flags = ((d.LEAF_WRITABLE if writable else 0) |
                  (d.LEAF_HIDDEN if hidden else 0) |
                  (d.LEAF_GAUGE if gauge else 0))
    const_labels = _const_labels(obj, labels)
    if elements:
        elements = _element_labels(obj, *elements)
    with _registry_lock:
        h = obj._live("register")
        try:
            obj._register_c(h, name, leaf_flags, descr or "", const_labels,
                            *elements)
        except PercpuError as e:
            # The C library says why, naming the leaf (same thread: the
            # reason is thread-local, and nothing registered since).
            why = d.sysctl_last_error()
            if not why:
                why = _REGISTER_WHY.get(e.errno)
                why = why and why.format(name=name)
            raise obj._error("register", e, why) from None
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
    def register(self, name, *, descr="", writable=False, hidden=False,
                 gauge=False, labels=None):
        """Export under the dotted sysctl `name` (see percpu.sysctl).

        ``writable``: a write through the tree (which zeroes) is allowed.
        ``hidden`` (CTLFLAG_SKIP): left out of list(), names(), snapshot()
        and the Prometheus dump; still read, written and described by name.
        ``gauge`` (CTLFLAG_GAUGE): the Prometheus dump shows the signed sum
        as a gauge (no ``_total`` added; a name ending in it is refused).
        ``labels``: a dict of constant Prometheus labels, str to str.
        Raises PercpuError: EINVAL for a bad name or label, EEXIST if
        taken, ENOTDIR if a prefix of it is a leaf or it is a prefix of
        one -- with the C library's reason; TypeError / ValueError for
        arguments of the wrong type, or strings C cannot carry (NUL).
        The registry keeps this object alive until unregistered or closed.
        """
        _register(self, name, descr, writable, hidden, gauge, labels)

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
    _owns = ", sysctl names"

    def __init__(self, *, backend=None):
        self._open(backend)
        self._names = []
        self._h = self._d.counter_new()
        self.add = self._d.bind_counter_add(self._h)

    def add(self, n=1, /):
        """Add `n` (default 1; an int64: negative subtracts) on the
        calling CPU.  Never blocks; keeps the GIL with the SWIG backend."""
        self._live("add")

    def value(self):
        """The sum over all CPUs (a racy snapshot)."""
        return self._d.counter_fetch(self._live("value"))

    def zero(self):
        """Set to zero, exactly: every concurrent add is either erased
        or kept, never lost and never counted twice."""
        self._d.counter_fetch_and_zero(self._live("zero"))

    def fetch_and_zero(self):
        """Zero and return what was removed, in one exact step."""
        return self._d.counter_fetch_and_zero(self._live("fetch_and_zero"))

    def per_cpu(self):
        """Each possible CPU's share, as a list indexed by CPU (shares of a
        counter that was added to and subtracted from may be negative)."""
        h = self._live("per_cpu")
        return [self._d.counter_read_cpu(h, cpu) for cpu in range(self._d.nr_cpus())]

    def _register_c(self, h, name, leaf_flags, descr, const_labels):
        self._d.counter_register(h, name, leaf_flags, descr, const_labels)

    def __int__(self):
        return self.value()

    def __iadd__(self, n):
        """``c += n``: ``c.add(n)``; `n` an int64."""
        self.add(_int64(n, "Counter +=", self))
        return self

    def __isub__(self, n):
        """``c -= n``: ``c.add(-n)`` (counter(9) adds are signed); `-n`
        must be an int64, so `n` is in -(2**63-1)..2**63."""
        n = _index(n)
        if not -INT64_MAX <= n <= -INT64_MIN:
            raise OverflowError(f"Counter -=: n={n} is outside -(2**63-1)..2**63 "
                                f"(-n must be an int64) ({self._ident()})")
        self.add(-n)
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

    _owns = ", sysctl names"

    def __init__(self, n, *, backend=None):
        n = _index(n)
        if n <= 0:
            raise ValueError(f"CounterArray({n}): needs at least one element "
                             f"(n in 1..2**64-1)")
        if n > SIZE_MAX:
            raise OverflowError(f"CounterArray({n}): n is outside the size_t "
                                f"range 1..2**64-1")
        self._open(backend)
        self._names = []
        self._n = n
        self._h = None
        try:
            self._h = self._d.array_new(n)
        except PercpuError as e:
            why = ("too many elements: their size overflows size_t"
                   if e.errno == errno.EINVAL else
                   f"cannot allocate {n} per-CPU counters")
            raise with_context(e, f"CounterArray({n})", why) from None

    def _slot(self, i, op):
        i = _index(i)
        n = self._n
        slot = i + n if i < 0 else i
        if not 0 <= slot < n:
            raise IndexError(f"CounterArray.{op}: index {i} out of range for "
                             f"{n} elements ({self._ident()})")
        return slot

    def add(self, i, n=1):
        """Add `n` (default 1; an int64: negative subtracts) to element
        `i` on the calling CPU."""
        h = self._live("add")
        self._d.array_add(h, self._slot(i, "add"),
                          _int64(n, "CounterArray.add", self))

    def value(self, i):
        """Element `i`'s sum over all CPUs."""
        h = self._live("value")
        return self._d.array_fetch(h, self._slot(i, "value"))

    def values(self):
        """Every element's value, as a list."""
        return self._d.array_fetch_all(self._live("values"), self._n)

    def zero(self):
        """Zero every element (each exactly)."""
        self._d.array_zero(self._live("zero"))

    def register(self, name, *, descr="", writable=False, hidden=False,
                 gauge=False, labels=None, element_label=None,
                 element_values=None):
        """Export under the dotted sysctl `name`, one leaf of len(self)
        values; the arguments as for Counter.register, and:

        ``element_label``: the Prometheus label naming each element
        (default ``index``); ``element_values``: its value for each
        element, one str per element (default ``"0"``, ``"1"``, ...).
        ``element_label="code", element_values=["2xx", "3xx", "4xx",
        "5xx"]`` gives ``..._total{code="2xx"}`` and so on.  A wrong
        number of values is a ValueError; two equal ones a PercpuError.
        """
        _register(self, name, descr, writable, hidden, gauge, labels,
                  element_label, element_values)

    def _register_c(self, h, name, leaf_flags, descr, const_labels,
                    element_label, element_values):
        self._d.array_register(h, name, leaf_flags, descr, const_labels,
                               element_label, element_values)

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

    A limit is an int64 that is not negative: 0..2**63-1.  Outside that,
    the constructor, ``check(limit)`` and ``r.limit = ...`` raise
    (ValueError below 0, OverflowError above).
    """

    def __init__(self, limit, *, backend=None):
        self._limit = self._check_limit(limit, f"RateCheck({limit!r})", None)
        self._open(backend)
        self._h = self._d.ratecheck_new()

    @staticmethod
    def _check_limit(limit, where, obj):
        limit = _index(limit)
        if not 0 <= limit <= INT64_MAX:
            who = f" ({obj._ident()})" if obj is not None else ""
            kind = ValueError if limit < 0 else OverflowError
            raise kind(f"{where}: limit={limit} is outside 0..2**63-1 "
                       f"(a non-negative int64){who}")
        return limit

    @property
    def limit(self):
        """Events per second allowed (0..2**63-1); assignable."""
        return self._limit

    @limit.setter
    def limit(self, limit):
        self._limit = self._check_limit(limit, "RateCheck.limit", self)

    def check(self, limit=None):
        """Count one event against `limit` (default: the object's)."""
        if limit is None:
            limit = self._limit
        else:
            limit = self._check_limit(limit, "RateCheck.check", self)
        return self._d.ratecheck_check(self._live("check"), limit)

    @property
    def count(self):
        """Events counted in the current second so far (a snapshot)."""
        return self._d.ratecheck_count(self._live("count"))

    def close(self):
        """Free the C object (idempotent)."""
        self._drop()

    def _describe(self):
        return f"limit={self.limit} count={self.count}"


class Reference(_NotCopyable):
    """One reference taken by ``LocalCount.acquire()`` or
    ``PercpuRef.acquire()``: ``release()`` it, or use it as a context
    manager (``with lc.acquire(): ...``), whose exit releases it.  It keeps
    the C object alive until released.  It cannot be copied or pickled
    (a copy would release the same reference twice)."""

    __slots__ = ("_owner", "_release")

    def __init__(self, owner, release):
        self._owner = owner
        self._release = release

    def _ident(self):
        return f"percpu.Reference at 0x{id(self):x} to {self._owner._ident()}"

    def release(self):
        """Drop this reference (once: a second call raises ValueError)."""
        release, self._release = self._release, None
        if release is None:
            raise ValueError(f"Reference.release: already released ({self._ident()})")
        release()

    def _no_copy(self, how):
        return TypeError(
            f"percpu.Reference cannot be {how}: it stands for one reference "
            f"held on a {type(self._owner).__name__}, which must be released "
            f"exactly once; take another with acquire() instead")

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
    _owns = ", references"

    def __init__(self, *, backend=None):
        self._open(backend)
        self._h = self._d.lc_new()
        self._acquire, self.release = self._d.bind_lc(self._h)

    def acquire(self):
        """Take a reference; returns a Reference (a context manager that
        releases it).  Raises PercpuError(EINVAL) once a drain began or a
        drain/trydrain succeeded, never aborts, even racing them; waits
        out a trydrain() that is deciding."""
        self._live("acquire")
        try:
            self._acquire()
        except PercpuError as e:
            raise self._error("acquire", e) from None
        return Reference(self, self.release)

    def release(self):
        """Drop a reference (on any thread).  During a drain it takes the
        drain's lock briefly; otherwise it never blocks."""
        self._live("release")

    def drain(self):
        """Wait until every reference is released; afterwards only
        close().  Blocks, with the GIL released.  Acquires racing it are
        counted and waited for, or refused (EINVAL); to end, new acquires
        must stop."""
        self._call("drain", self._d.lc_drain)

    def trydrain(self):
        """First wait out every read section in flight (in any thread;
        the GIL is released), so a lookup that found this object before
        it was marked dying has acquired or left.  Then: if no reference
        is held, make this final (as drain() does) and return True;
        otherwise return False and stay live (acquire works again).  Never
        waits for references.  Exact even with acquires racing it.
        PercpuError(EDEADLK) inside a read section of this thread."""
        return self._call("trydrain", self._d.lc_trydrain)

    def _why(self, op, err):
        if err == errno.EDEADLK:
            return _IN_SECTION.format(op=op)
        if err != errno.EINVAL:
            return None
        state = self.state
        if op == "acquire":
            return ("no new references once a drain began or a drain/trydrain "
                    f"succeeded (state: {state})")
        if state == "live":
            return ("more releases than acquires (the count is negative); "
                    "the LocalCount stays live")
        return (f"a drain already began or succeeded (state: {state}); "
                "drain()/trydrain() succeed once")

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
        return self._d.lc_refcnt(self._live("refcount"))

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
            except PercpuError as e:
                if d.lc_state(h) == d.LOCALCOUNT_LIVE:
                    # a refused drain (negative count): stay open
                    raise self._error("close", e) from None
                # another thread's close() drains it
        self._drop()

    def _describe(self):
        return f"state={self.state} refcount={self.refcount()}"


# ---- pserialize(9) --------------------------------------------------------

_IN_SECTION = ("called inside a read section of this thread, whose grace "
               "period would wait for that section itself; call {op}() "
               "after the with percpu.read_section() block")


class Pserialize(_Owner):
    """The writer side of NetBSD pserialize(9): ``perform()`` returns once
    every read section in flight when it was called -- in any thread --
    has exited.  The reader side, :func:`read_section`, belongs to no
    object.  The pattern::

        with percpu.read_section():          # reader
            obj = table.get(key)
            ref = obj.lc.acquire() if obj else None

        del table[key]                       # writer: unpublish,
        psz.perform()                        # wait out the lookups,
        obj.lc.drain()                       # then the references

    ``perform()`` blocks with the GIL released (the reader it waits for
    needs the GIL to leave its section).  Inside a read section of the
    calling thread it would wait for itself: PercpuError(EDEADLK), nothing
    done (C aborts).  ``close()`` frees it; a perform in flight on another
    thread keeps it until it returns.
    """

    def __init__(self, *, backend=None):
        self._open(backend)
        self._h = self._d.psz_new()

    def perform(self):
        """Wait until every read section in flight (any thread) has
        exited.  Blocks, with the GIL released.  PercpuError(EDEADLK)
        inside a read section of this thread."""
        self._call("perform", self._d.psz_perform)

    def _why(self, op, err):
        if err == errno.EDEADLK:
            return _IN_SECTION.format(op=op)
        return None

    def close(self):
        """Free it (idempotent); perform() raises ValueError afterwards."""
        self._drop()

    def _describe(self):
        return ""


_threads = threading.local()


def _open_sections():
    """This thread's open ReadSection objects, innermost last."""
    try:
        return _threads.sections
    except AttributeError:
        _threads.sections = []
        return _threads.sections


class ReadSection(_NotCopyable):
    """One pserialize(9) read section: ``pserialize_read_enter()`` on
    ``__enter__``, ``pserialize_read_exit(s)`` with the value enter
    returned on ``__exit__`` -- also when the block raises.  Made by
    :func:`read_section`; each ``with`` needs its own.  Sections nest
    (inner ones exit first) and exit on the thread that entered them.
    Keep them short: a ``perform()`` or ``trydrain()`` waits for them.
    """

    __slots__ = ("_d", "_s", "_thread")

    def __init__(self, driver):
        self._d = driver
        self._s = None
        self._thread = None

    def _ident(self):
        return f"percpu.ReadSection at 0x{id(self):x}"

    def __enter__(self):
        if self._s is not None:
            raise error(errno.EINVAL, "ReadSection.__enter__",
                        "this read section is open already; each with "
                        "statement needs its own percpu.read_section()",
                        self._ident())
        sections = _open_sections()
        self._s = self._d.read_enter()
        self._thread = threading.get_ident()
        sections.append(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._s is None:
            raise error(errno.EINVAL, "ReadSection.__exit__",
                        "this read section is not open", self._ident())
        if self._thread != threading.get_ident():
            raise error(errno.EINVAL, "ReadSection.__exit__",
                        "a read section exits on the thread that entered it "
                        f"(thread {self._thread}); it stays open",
                        self._ident())
        sections = _open_sections()
        if sections[-1] is not self:
            raise error(errno.EINVAL, "ReadSection.__exit__",
                        "not this thread's innermost read section (nested "
                        "sections exit inner first); it stays open",
                        self._ident())
        self._d.read_exit(self._s)
        sections.pop()
        self._s = self._thread = None

    @property
    def open(self):
        """True between enter and exit."""
        return self._s is not None

    def _no_copy(self, how):
        return TypeError(f"percpu.ReadSection cannot be {how}: it stands "
                         "for at most one open section of one thread; make "
                         "another with percpu.read_section()")

    def __repr__(self):
        return f"<percpu.ReadSection {'open' if self.open else 'not open'}>"


def read_section(*, backend=None):
    """A pserialize(9) read section, for a ``with`` statement::

        with percpu.read_section():
            obj = table.get(key)         # lookups that a writer's
            if obj is not None:          # perform() / trydrain() waits out
                ref = obj.lc.acquire()

    Read sections belong to no object and are process-wide: every
    backend's ``Pserialize.perform()`` and ``LocalCount.trydrain()`` wait
    for them.  Enter and exit keep the GIL on SWIG (two per-CPU adds)."""
    return ReadSection(_drivers.resolve(backend))


def in_read_section(*, backend=None):
    """True if the calling thread is inside a read section
    (pserialize_in_read_section; for assertions)."""
    return bool(_drivers.resolve(backend).in_read_section())


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
    _owns = ", references and callbacks"

    def __init__(self, release=None, *, atomic=False, dead=False,
                 allow_reinit=False, backend=None):
        if release is not None and not callable(release):
            raise TypeError(f"PercpuRef: release must be callable or None, "
                            f"not {type(release).__name__}")
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
        self._live("get")

    def put(self, n=1, /):
        """Drop `n` references; may run `release` on this thread."""
        self._live("put")

    def tryget(self, n=1, /):
        """Take `n` references unless the count is zero; True if taken.
        Succeeds on a killed ref whose count is not zero yet."""
        self._live("tryget")

    def tryget_live(self):
        """Take a reference unless the ref is dying or zero; True if taken."""
        self._live("tryget_live")

    def acquire(self, *, live=True):
        """Take a reference (tryget_live, or tryget with live=False) and
        return a Reference whose release() / with-exit puts it.  Raises
        PercpuError(ENOENT) if the ref is dead."""
        ok = self.tryget_live() if live else self.tryget()
        if not ok:
            why = ("the ref is dying or its count is zero (tryget_live failed)"
                   if live else "the count is zero (tryget failed)")
            raise error(errno.ENOENT, "PercpuRef.acquire", why, self._ident())
        return Reference(self, self.put)

    def _with_confirm(self, op, queue, call, confirm):
        h = self._live(op)
        if confirm is not None:
            if not callable(confirm):
                raise TypeError(f"PercpuRef.{op}: confirm must be callable or "
                                f"None, not {type(confirm).__name__} "
                                f"({self._ident()})")
            queue.append(confirm)
        try:
            call(h, 1 if confirm is not None else 0)
        except BaseException as e:
            if confirm is not None:
                try:
                    queue.remove(confirm)
                except ValueError:
                    pass
            if isinstance(e, PercpuError):
                raise self._error(op, e) from None
            raise

    _WHY = {
        ("kill", errno.EINVAL): "already dying (killed): kill() once per life",
        ("resurrect", errno.EINVAL): "not dying: only a killed ref can be resurrected",
        ("reinit", errno.EBUSY): "not dead with a zero count (mode: {mode}, zero: {zero})",
        ("switch_to_percpu", errno.EINVAL):
            "created without allow_reinit (or atomic/dead, which imply it)",
    }

    def _why(self, op, err):
        why = self._WHY.get((op, err))
        if why is not None and "{" in why:
            h = self._h
            why = why.format(mode=self.mode if h is not None else "closed",
                             zero=self._d.ref_is_zero(h) if h is not None else "?")
        return why

    def kill(self, confirm=None):
        """Drop the initial reference and switch to atomic mode, in this
        thread: `confirm` (optional) is called once every CPU sees the ref
        dead, and `release` too if no other reference is held, before kill
        returns.  PercpuError(EINVAL) if already dying.  Waits about one
        fence (GIL released), longer while a previous switch of this ref
        is in flight."""
        self._with_confirm("kill", self._events.kill_confirms, self._d.ref_kill,
                           confirm)

    def switch_to_atomic(self, confirm=None):
        """Switch to atomic mode (sticky until switch_to_percpu);
        `confirm` is called once every CPU sees it.  Returns at once."""
        self._with_confirm("switch_to_atomic", self._events.switch_confirms,
                           self._d.ref_switch_to_atomic, confirm)

    def switch_to_atomic_sync(self):
        """Switch to atomic mode and wait for the switch to be confirmed
        (blocks, GIL released)."""
        self._call("switch_to_atomic_sync", self._d.ref_switch_to_atomic_sync)

    def switch_to_percpu(self):
        """Back to percpu mode (deferred to the next reinit if dying).
        PercpuError(EINVAL) unless created with allow_reinit (or atomic /
        dead, which imply it)."""
        self._call("switch_to_percpu", self._d.ref_switch_to_percpu)

    def resurrect(self):
        """Bring a killed ref back to life with one (initial) reference.
        PercpuError(EINVAL) if it is not dying."""
        self._call("resurrect", self._d.ref_resurrect)

    def reinit(self):
        """Start a ref whose count reached zero over, as after creation.
        PercpuError(EBUSY) unless it is dead with a zero count."""
        self._call("reinit", self._d.ref_reinit)

    def is_zero(self):
        """True if atomic with a zero count."""
        return self._d.ref_is_zero(self._live("is_zero"))

    def is_dying(self):
        """True once killed."""
        return self._d.ref_is_dying(self._live("is_dying"))

    @property
    def mode(self):
        """"percpu", "atomic" or "dead" (killed, which is atomic too)."""
        d = self._d
        bits = d.ref_mode(self._live("mode"))
        if bits & 2:
            return "dead"
        return "atomic" if bits & 1 else "percpu"

    @property
    def releases(self):
        """How many times `release` has run (once per life)."""
        return self._d.ref_releases(self._live("releases"))

    def close(self):
        """Kill if not dying, and let go: the C ref is freed once its count
        is zero.  May wait (GIL released) for a switch in flight."""
        self._drop()

    def _describe(self):
        return f"mode={self.mode} releases={self.releases}"
