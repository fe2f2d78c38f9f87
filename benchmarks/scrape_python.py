# SPDX-License-Identifier: MIT
"""Scrape cost from Python: percpu.sysctl.prometheus() of 10,000 counters.

    bazel run -c opt //benchmarks:scrape_python -- [--samples=N]

The tree has the shape of //benchmarks:scaling's scrape tree (5,000 scalar
leaves and 500 arrays of 10 under "bench.scrape.", every counter non-zero),
without its labels and gauges, which Python cannot register.  Each sample
is one call, timed with time.perf_counter_ns(); the median, p99 and
bytes are printed per backend (swig, cffi: one tree, one process, the
calls interleaved, which one goes first rotating), and, as the baseline of the same run, for the C call
itself: counter_sysctl_prometheus_string() through ctypes on the libpercpu
this process loaded (found in /proc/self/maps), its result freed
unread.  The ratios backend / C say what the Python path adds (the
bytes -> str copy and the call).  Exactness: every dump must hold exactly
10,000 bench_scrape_ samples (the C one too: the same tree).  Figures
only; no target.
"""

import argparse
import ctypes
import sys
import time

import percpu

SCALARS = 5000
ARRAYS = 500
ARRAY_LEN = 10
COUNTERS = SCALARS + ARRAYS * ARRAY_LEN


def build_tree():
    objs = []
    for i in range(SCALARS):
        c = percpu.Counter()
        c.add(1000 + i)
        c.register(f"bench.scrape.c{i:05d}",
                   descr="A scalar of the scrape benchmark")
        objs.append(c)
    for a in range(ARRAYS):
        arr = percpu.CounterArray(ARRAY_LEN)
        for j in range(ARRAY_LEN):
            arr.add(j, 1000 + SCALARS + a * ARRAY_LEN + j)
        arr.register(f"bench.scrape.arr{a:04d}",
                     descr="An array of the scrape benchmark")
        objs.append(arr)
    return objs


def check(text):
    n = sum(1 for line in text.splitlines() if line.startswith("bench_scrape_"))
    if n != COUNTERS:
        print(f"EXACTNESS CHECK FAILED: {n} bench_scrape_ samples, want "
              f"{COUNTERS}", file=sys.stderr)
        sys.exit(1)


def c_dump():
    """counter_sysctl_prometheus_string of the loaded libpercpu, or None."""
    seen = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "percpu" not in path or ".so" not in path or path in seen:
                continue
            seen.add(path)
            try:
                lib = ctypes.CDLL(path)
                fn = lib.counter_sysctl_prometheus_string
            except (OSError, AttributeError):
                continue
            fn.restype = ctypes.c_void_p
            fn.argtypes = [ctypes.c_char_p]
            libc = ctypes.CDLL(None)
            libc.free.argtypes = [ctypes.c_void_p]

            def call(text=False):
                p = fn(None)
                if not p:
                    raise OSError(ctypes.get_errno(), "dump failed")
                out = ctypes.string_at(p).decode() if text else None
                libc.free(p)
                return out

            return call
    return None


def pct(v, q):
    s = sorted(v)
    return s[min(len(s) - 1, len(s) * q // 100)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args()
    if args.samples < 1:
        ap.error("--samples must be positive")

    objs = build_tree()
    backends = []
    for name in ("swig", "cffi"):
        try:
            backends.append((name, percpu.get_backend(name)))
        except Exception as e:  # a backend that is not built
            print(f"  ({name}: not available: {e})")
    cdump = c_dump()
    if cdump is None:
        print("  (C baseline: no loaded libpercpu exports "
              "counter_sysctl_prometheus_string)")
    else:
        text = cdump(text=True)
        check(text)
        size_c = len(text.encode())
    times = {name: [] for name, _ in backends}
    times_c = []
    size = {}
    for name, pc in backends:  # warm-up and exactness
        text = pc.sysctl.prometheus()
        check(text)
        size[name] = len(text.encode())
    calls = [(name, pc.sysctl.prometheus, times[name]) for name, pc in backends]
    if cdump is not None:
        calls.append(("C", cdump, times_c))
    for r in range(args.samples):
        k = r % len(calls)  # rotate which call goes first
        for name, call, out in calls[k:] + calls[:k]:
            t0 = time.perf_counter_ns()
            text = call()
            out.append(time.perf_counter_ns() - t0)
            del text

    print(f"scrape from Python: percpu.sysctl.prometheus() of {COUNTERS} "
          f"counters ({SCALARS} scalars, {ARRAYS} arrays of {ARRAY_LEN}; "
          f"median of {args.samples})")
    if cdump is not None:
        print(f"  {'C':5s} median {pct(times_c, 50) / 1e6:8.2f} ms   p99 "
              f"{pct(times_c, 99) / 1e6:8.2f} ms   {size_c} bytes   "
              f"(counter_sysctl_prometheus_string, via ctypes)")
    for name, _ in backends:
        v = times[name]
        print(f"  {name:5s} median {pct(v, 50) / 1e6:8.2f} ms   p99 "
              f"{pct(v, 99) / 1e6:8.2f} ms   {size[name]} bytes")
    for name, _ in backends:
        if cdump is not None:
            print(f"  {name} / C, median: "
                  f"{pct(times[name], 50) / pct(times_c, 50):.2f}x")
    if len(backends) == 2:
        print(f"  swig / cffi, median: "
              f"{pct(times['swig'], 50) / pct(times['cffi'], 50):.2f}x")
    for o in objs:
        o.close()


if __name__ == "__main__":
    main()
