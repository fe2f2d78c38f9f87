# SPDX-License-Identifier: MIT
"""Per-call cost of the two bindings, and what the GIL policy does.

TEST SUPPORT, not product API: shipped in the wheel so the numbers of
docs/python.md can be measured on an installed package, but not exported
by ``percpu`` (``python3 -m percpu.bench`` only), and free to change.  See
docs/python.md, "Test support shipped with the package".

    python3 -m percpu.bench [--number N] [--repeat R] [--threads-seconds S]

Prints, for each backend, the nanoseconds per call (best of R runs of N
calls, timeit) of the raw binding call and of the facade call, for the
tiny operations; then the total throughput of 1 and 2 Python threads
looping over Counter.add (the GIL convoy: a binding that releases the
GIL on every call loses most of it), and of 1 and 2 threads running one
long C loop each (which both bindings run with the GIL released).
Build with optimisation (bazel -c opt, or pip) before trusting numbers.
"""

import argparse
import os
import sys
import threading
import time
import timeit

from . import _drivers
from ._backend import get_backend


def _ns(stmt, env, number, repeat):
    t = min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat))
    return t / number * 1e9


def per_call(name, number, repeat):
    pc = get_backend(name)
    d = pc.driver
    c = pc.Counter()
    h = c._live()
    lc = pc.LocalCount()
    r = pc.PercpuRef()
    r.get(1 << 20)  # headroom: the loops below put as often as they get
    env = dict(c=c, h=h, d=d, lc=lc, r=r)
    if name == "swig":
        raw = [("raw  Counter.add(h, 1)", "f(1)", dict(f=h.add)),
               ("raw  Counter.fetch(h)", "f()", dict(f=h.fetch)),
               ("raw  nr_cpus()", "f()", dict(f=d.nr_cpus))]
    else:
        lib = d.lib
        raw = [("raw  lib.percpu_py_counter_add(h, 1)", "f(h, 1)",
                dict(f=lib.percpu_py_counter_add, h=h)),
               ("raw  lib.percpu_py_counter_fetch(h)", "f(h)",
                dict(f=lib.percpu_py_counter_fetch, h=h)),
               ("raw  lib.percpu_nr_cpus()", "f()", dict(f=lib.percpu_nr_cpus))]
    rows = []
    for label, stmt, extra in raw:
        rows.append((label, _ns(stmt, dict(env, **extra), number, repeat)))
    for label, stmt in [
        ("Counter.add(1)", "c.add(1)"),
        ("Counter.add()", "c.add()"),
        ("Counter.value()", "c.value()"),
        ("LocalCount acquire()+release()", "lc.acquire(); lc.release()"),
        ("with LocalCount.acquire(): pass", "with lc.acquire(): pass"),
        ("PercpuRef get()+put()", "r.get(); r.put()"),
        ("PercpuRef tryget()+put()", "r.tryget(); r.put()"),
    ]:
        rows.append((label, _ns(stmt, env, number, repeat)))
    r.put(1 << 20)
    r.close()
    lc.close()
    c.close()
    return rows


def _threads_rate(n, body, seconds):
    stop = time.monotonic() + seconds
    counts = [0] * n
    barrier = threading.Barrier(n)
    cpus = sorted(os.sched_getaffinity(0))

    def run(i):
        os.sched_setaffinity(0, {cpus[i % len(cpus)]})
        barrier.wait()
        counts[i] = body(stop)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def gil_effect(name, seconds):
    pc = get_backend(name)
    c = pc.Counter()
    h = c._live()
    d = pc.driver

    def tiny(stop):
        add, n, now = c.add, 0, time.monotonic
        while now() < stop:
            for _ in range(1000):
                add(1)
            n += 1000
        return n

    def long_loop(stop):
        n = 0
        while time.monotonic() < stop:
            n += d.stress_counter_add(h, 5_000_000, 1)
        return n

    out = {}
    for label, body in (("tiny calls", tiny), ("long C loop", long_loop)):
        out[label] = [_threads_rate(n, body, seconds) / 1e6 for n in (1, 2)]
    c.close()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m percpu.bench")
    p.add_argument("--number", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--threads-seconds", type=float, default=1.0)
    args = p.parse_args(argv)
    backends = _drivers.available()
    print(f"python {sys.version.split()[0]}, CPUs in mask "
          f"{len(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.1f}, "
          f"path {get_backend().topology.path()}")
    base = _ns("f()", dict(f=lambda: None), args.number, args.repeat)
    print(f"{'pure Python (lambda: None)()':40s} {base:7.1f} ns")
    for b in backends:
        print(f"-- {b}")
        for label, ns in per_call(b, args.number, args.repeat):
            print(f"{label:40s} {ns:7.1f} ns")
    for b in backends:
        for label, (one, two) in gil_effect(b, args.threads_seconds).items():
            print(f"{b:4s} {label:12s} M ops/s: 1 thread {one:8.1f}, "
                  f"2 threads {two:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
