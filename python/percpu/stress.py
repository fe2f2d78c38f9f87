# SPDX-License-Identifier: MIT
"""Stress scenarios for the Python bindings, with exact invariants.

TEST SUPPORT, not product API.  This module ships in the wheel so that
an installed package can be stress-tested where it runs, but it is not
part of the ``percpu`` API: ``percpu.__all__`` does not export it, it is
imported only as ``percpu.stress``, and its scenarios, options and output
may change with the tests.  The C loops it drives (bindings/
percpu_stress.h, bindings/stress_entry.c) are compiled into both
extension modules for the same reason; applications never call them.
See docs/python.md, "Test support shipped with the package".

    python3 -m percpu.stress [--backend swig|cffi|all] [--threads N]
                             [--iters N] [--variant c|python|all]
                             [--scenario NAME ...] [--list]

Two variants of each scenario:

``c``       N Python threads, each pinned to one CPU of the affinity
            mask, start together at a barrier and run one loop *inside C*
            (a test-only entry point of the extension, percpu_stress.h)
            with the GIL released -- so the loops really overlap on the
            per-CPU words, as C threads would.
``python``  the same shape driven call by call from Python threads, with
            a tiny switch interval: this exercises the bindings
            themselves (GIL hand-offs, callbacks from other threads,
            object lifetimes) more than the library.

After the threads join, each scenario checks what must hold exactly:
counter sums (and zero losing nothing), the release callback running
exactly once, drain never returning while a reference is still held,
the count back at zero.  ``gil_released`` checks what the C variant
rests on: N threads rendezvous *inside* C, which they can all reach only
if each waits there with the GIL released; a lone caller that cannot
meet its partner must time out (the check's own negative control).  Its
verdict does not depend on the machine's speed or load.

Exit status: 0 if every check held, 1 otherwise.
"""

import argparse
import faulthandler
import os
import sys
import threading
import time
from collections import namedtuple

from . import _drivers
from ._backend import get_backend

__all__ = ["Result", "SCENARIOS", "run", "run_all", "main"]

Result = namedtuple("Result", "scenario backend variant ok detail")

_U64 = 1 << 64


class _Failure(Exception):
    pass


def _check(cond, msg):
    if not cond:
        raise _Failure(msg)


def _cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _run_threads(n, body, timeout):
    """Run body(i) in n threads, thread i pinned to CPU cpus[i % len],
    all released together by a barrier.  Returns the results by index;
    re-raises the first exception."""
    cpus = _cpus()
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def worker(i):
        try:
            try:
                os.sched_setaffinity(0, {cpus[i % len(cpus)]})  # 0: this thread
            except (AttributeError, OSError):
                pass
            barrier.wait(timeout)
            results[i] = body(i)
        except BaseException as e:  # reported by the controller
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise _Failure(f"threads still running after {timeout}s (hang?)")
    if errors:
        raise errors[0]
    return results


def _wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


class _Calls:
    """A callback that counts its calls and the threads they came from."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.threads = set()

    def __call__(self):
        with self.lock:
            self.count += 1
            self.threads.add(threading.get_ident())


# ---- scenarios: (pc, driver, n, iters, variant, timeout) -> detail str -----

def counter_sum(pc, d, n, iters, variant, timeout):
    """n threads add distinct deltas; the sum must be exact."""
    c = pc.Counter()
    deltas = [i + 1 for i in range(n)]
    if variant == "c":
        h = c._live()
        _run_threads(n, lambda i: d.stress_counter_add(h, iters, deltas[i]), timeout)
    else:
        def body(i):
            add, delta = c.add, deltas[i]
            for _ in range(iters):
                add(delta)
        _run_threads(n, body, timeout)
    expect = sum(deltas) * iters % _U64
    got = c.value()
    _check(got == expect, f"sum {got} != {expect}")
    _check(sum(c.per_cpu()) % _U64 == expect, "per-CPU shares do not add up")
    c.close()
    return f"sum {got}"


def counter_zero_exact(pc, d, n, iters, variant, timeout):
    """adders race a thread that keeps zeroing: removed + left == added."""
    c = pc.Counter()
    adders = max(1, n - 1)
    h = c._live()
    removed = [0]
    done = threading.Event()

    def body(i):
        if i == adders:  # the zeroing thread
            total = 0
            while not done.is_set():
                if variant == "c":
                    total += d.stress_counter_drain_rounds(h, 64)
                else:
                    total += c.fetch_and_zero()
            removed[0] = total + c.fetch_and_zero()
            return None
        if variant == "c":
            d.stress_counter_add(h, iters, 1)
        else:
            add = c.add
            for _ in range(iters):
                add(1)
        return None

    finished = [0]
    lock = threading.Lock()

    def counted(i):
        body(i)
        if i != adders:
            with lock:
                finished[0] += 1
                if finished[0] == adders:
                    done.set()

    _run_threads(adders + 1, counted, timeout)
    left = c.value()
    expect = adders * iters
    _check(removed[0] + left == expect,
           f"removed {removed[0]} + left {left} != added {expect}")
    c.close()
    return f"removed {removed[0]} left {left}"


def array_sum(pc, d, n, iters, variant, timeout):
    """n threads add to a 5-element array; each element is exact."""
    size = 5
    a = pc.CounterArray(size)
    if variant == "c":
        h = a._live()
        _run_threads(n, lambda i: d.stress_array_add(h, iters), timeout)
    else:
        def body(i):
            add = a.add
            for k in range(iters):
                add(k % size)
        _run_threads(n, body, timeout)
    expect = [n * len(range(e, iters, size)) for e in range(size)]
    got = a.values()
    _check(got == expect, f"values {got} != {expect}")
    a.close()
    return f"values {got}"


def localcount_cycle(pc, d, n, iters, variant, timeout):
    """acquire/release pairs on every CPU; the count ends at zero, so
    trydrain succeeds at once."""
    lc = pc.LocalCount()
    if variant == "c":
        h = lc._live()
        done = _run_threads(n, lambda i: d.stress_localcount_cycle(h, iters), timeout)
        _check(all(x == iters for x in done), f"a loop was refused: {done}")
    else:
        def body(i):
            for _ in range(iters):
                with lc.acquire():
                    pass
        _run_threads(n, body, timeout)
    _check(lc.refcount() == 0, f"refcount {lc.refcount()} != 0")
    _check(lc.trydrain() is True, "trydrain failed with no reference held")
    _check(lc.state == "drained", f"state {lc.state}")
    lc.close()
    return "count back to 0, trydrain ok"


def localcount_drain_waits(pc, d, n, iters, variant, timeout):
    """threads hold references and release them slowly while the drain
    runs: the drain must not return before the last release."""
    lc = pc.LocalCount()
    nrefs = max(1, min(iters, 2000))
    spin = 2000
    if variant == "c":
        h = lc._live()
        sync = d.stress_sync_new()

        def body(i):
            if i == n:  # the drainer: once every holder is ready
                _check(_wait_for(lambda: d.stress_sync_get(sync, d.STRESS_READY) == n,
                                 timeout), "holders never got ready")
                d.stress_sync_set(sync, d.STRESS_GO, 1)
                return d.stress_localcount_drain(h, sync)
            return d.stress_localcount_hold(h, sync, nrefs, spin)

        results = _run_threads(n + 1, body, timeout)
        _check(all(rc == 0 for rc in results[:n]), f"holders failed: {results[:n]}")
        _check(d.stress_sync_get(sync, d.STRESS_FAILURES) == 0, "an acquire was refused")
        early = results[n]
        _check(early == 0, f"drain returned with {early} references still held")
    else:
        outstanding = [0]
        lock = threading.Lock()
        ready = threading.Barrier(n + 1)
        seen_at_return = [None]

        def body(i):
            if i == n:
                ready.wait(timeout)
                lc.drain()
                with lock:
                    seen_at_return[0] = outstanding[0]
                return None
            refs = []
            for _ in range(nrefs):
                refs.append(lc.acquire())
                with lock:
                    outstanding[0] += 1
            ready.wait(timeout)
            for r in refs:
                with lock:
                    outstanding[0] -= 1
                r.release()
            return None

        _run_threads(n + 1, body, timeout)
        _check(seen_at_return[0] == 0,
               f"drain returned with {seen_at_return[0]} references still held")
    _check(lc.state == "drained", f"state {lc.state}")
    lc.close()
    return f"{n} x {nrefs} references released before drain returned"


def ref_release_once(pc, d, n, iters, variant, timeout):
    """tryget/put loops race a kill: release runs exactly once, and a
    tryget never succeeds after it."""
    calls = _Calls()
    r = pc.PercpuRef(calls)
    h = r._live()
    started = threading.Event()

    def body(i):
        if i == n:  # the killer
            started.wait(timeout)
            r.kill()
            return None
        started.set()
        if variant == "c":
            return d.stress_ref_tryget_put(h, iters, i % 2)
        ok = 0
        tryget, tryget_live, put = r.tryget, r.tryget_live, r.put
        for k in range(iters):
            if not (tryget_live() if i % 2 else tryget()):
                break
            ok += 1
            put()
        return ok

    _run_threads(n + 1, body, timeout)
    _check(_wait_for(lambda: calls.count >= 1, timeout), "release never ran")
    time.sleep(0.01)
    _check(calls.count == 1, f"release ran {calls.count} times")
    _check(r.releases == 1, f"C counted {r.releases} releases")
    _check(r.is_zero() and r.mode == "dead", f"mode {r.mode}, zero {r.is_zero()}")
    _check(not r.tryget(), "tryget succeeded on a released ref")
    r.close()
    return "release exactly once"


def ref_switch_churn(pc, d, n, iters, variant, timeout):
    """get/put on every CPU while the ref is switched between percpu and
    atomic mode again and again; then a kill: no count is lost (a lost
    one would abort at the fold or leave the count above zero)."""
    calls = _Calls()
    r = pc.PercpuRef(calls, allow_reinit=True)
    h = r._live()
    done = threading.Event()
    switches = [0]

    def body(i):
        if i == n:  # the switcher
            while not done.is_set():
                r.switch_to_atomic_sync()
                r.switch_to_percpu()
                switches[0] += 1
            return None
        if variant == "c":
            return d.stress_ref_get_put(h, iters)
        get, put = r.get, r.put
        for _ in range(iters):
            get()
            put()
        return iters

    finished = [0]
    lock = threading.Lock()

    def counted(i):
        res = body(i)
        if i != n:
            with lock:
                finished[0] += 1
                if finished[0] == n:
                    done.set()
        return res

    results = _run_threads(n + 1, counted, timeout)
    _check(all(x == iters for x in results[:n]), f"a get was refused: {results[:n]}")
    _check(calls.count == 0, "released while the initial reference was held")
    r.kill()
    _check(_wait_for(lambda: calls.count == 1, timeout), "release never ran after kill")
    time.sleep(0.01)
    _check(calls.count == 1, f"release ran {calls.count} times")
    r.close()
    return f"{switches[0]} switch round trips, release once"


def gil_released(pc, d, n, iters, variant, timeout):
    """The C loops run with the GIL released: n threads meet inside C."""
    if variant != "c":
        return None  # only meaningful for the C loops
    n = max(2, n)
    sync = d.stress_sync_new()
    met = _run_threads(n, lambda i: d.stress_rendezvous(sync, n, int(timeout * 1000)),
                       timeout * 2)
    _check(all(m == 1 for m in met),
           f"{met.count(0)} of {n} threads never met the others inside C: "
           "the GIL was not released around the C call")
    # Negative control of the check: one caller alone never meets two.
    _check(d.stress_rendezvous(d.stress_sync_new(), 2, 50) == 0,
           "a lone caller met a partner: the rendezvous checks nothing")
    return f"{n} threads met inside C (GIL released); a lone caller timed out"


SCENARIOS = {
    "counter_sum": counter_sum,
    "counter_zero_exact": counter_zero_exact,
    "array_sum": array_sum,
    "localcount_cycle": localcount_cycle,
    "localcount_drain_waits": localcount_drain_waits,
    "ref_release_once": ref_release_once,
    "ref_switch_churn": ref_switch_churn,
    "gil_released": gil_released,
}

VARIANTS = ("c", "python")


def run(scenario, backend=None, *, threads=None, iters=100000, variant="c",
        timeout=120.0):
    """Run one scenario; returns a Result (ok False on a broken invariant)."""
    pc = get_backend(backend)
    fn = SCENARIOS[scenario]
    n = threads or max(2, len(_cpus()))
    old = sys.getswitchinterval()
    if variant == "python":
        sys.setswitchinterval(1e-6)  # force interleavings
    try:
        detail = fn(pc, pc.driver, n, iters, variant, timeout)
        return Result(scenario, pc.name, variant, True, detail)
    except _Failure as e:
        return Result(scenario, pc.name, variant, False, str(e))
    finally:
        sys.setswitchinterval(old)


def run_all(backends=None, scenarios=None, variants=VARIANTS, **kw):
    out = []
    for b in backends or _drivers.available():
        for v in variants:
            for s in scenarios or SCENARIOS:
                res = run(s, b, variant=v, **kw)
                if res.detail is not None:
                    out.append(res)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m percpu.stress",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="all",
                   help="swig, cffi or all (default: all that import)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per scenario (default: CPUs in the affinity mask, >= 2)")
    p.add_argument("--iters", type=int, default=2000000,
                   help="iterations per thread (C variant; python uses iters/20)")
    p.add_argument("--variant", default="all", choices=("c", "python", "all"))
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                   help="run only these (repeatable)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds before a scenario counts as hung")
    p.add_argument("--require-overlap", action="store_true",
                   help="accepted for compatibility: gil_released always "
                        "checks (it no longer depends on an observed overlap)")
    p.add_argument("--list", action="store_true", help="list scenarios and exit")
    args = p.parse_args(argv)

    if args.list:
        for name, fn in SCENARIOS.items():
            print(f"{name:24s} {fn.__doc__.split(chr(10))[0]}")
        return 0
    backends = _drivers.available() if args.backend == "all" else [args.backend]
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    # A hang must end the run with a traceback, not block forever.
    try:
        faulthandler.dump_traceback_later(args.timeout * 4, exit=True,
                                          file=sys.__stderr__)
        watchdog = True
    except (AttributeError, ValueError, OSError):  # no real stderr (captured)
        watchdog = False

    failed = 0
    print(f"percpu stress: backends {','.join(backends)}, "
          f"{args.threads or max(2, len(_cpus()))} threads, path "
          f"{get_backend(backends[0]).topology.path()}, "
          f"fast mode {get_backend(backends[0]).topology.fast_mode_available()}")
    for b in backends:
        for v in variants:
            iters = args.iters if v == "c" else max(1, args.iters // 20)
            for s in args.scenario or SCENARIOS:
                t0 = time.monotonic()
                res = run(s, b, threads=args.threads, iters=iters, variant=v,
                          timeout=args.timeout)
                if res.detail is None:
                    continue
                ok = res.ok
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {b:4s} {v:6s} {s:24s} "
                      f"{time.monotonic() - t0:6.2f}s  {res.detail}", flush=True)
    if watchdog:
        faulthandler.cancel_dump_traceback_later()
    print("all invariants held" if not failed else f"{failed} scenario(s) FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
