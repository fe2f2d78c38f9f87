# SPDX-License-Identifier: MIT
"""The Python service of the stats-segment end-to-end tests (issue 17):
stat_service.c's counterpart with the Python package.  It publishes
through PERCPU_PUBLISH=1 in its environment (the library publishes when
it loads; no Python call), which the test sets.
Usage: stat_service.py THREADS ITERS

Registers, under "pysvc" (statlib.py's py_expected() gives the values
once THREADS Python threads have each done ITERS rounds):
  pysvc.requests   2**40 + one per round
  pysvc.inflight   a gauge: +1 -1 per round, then -(t + 1) from thread t
  pysvc.codes      a CounterArray(3) labelled service="py" and
                   code=2xx/4xx/5xx; round i of thread t adds t + 1 to
                   element i % 3
  pysvc.bytes      a hidden leaf: never published
then prints "ready" and serves stdin, a line at a time, until it closes:
"prom [PREFIX]" prints percpu.sysctl.prometheus([PREFIX]) of the whole
tree, then "end".
"""

import os
import sys
import threading

import percpu


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: stat_service.py THREADS ITERS")
    if os.environ.get("PERCPU_PUBLISH") != "1":
        sys.exit("stat_service.py: PERCPU_PUBLISH=1 must be set (it is how "
                 "this service publishes)")
    threads, iters = int(sys.argv[1]), int(sys.argv[2])
    requests = percpu.Counter()
    requests.register("pysvc.requests", descr="requests served")
    inflight = percpu.Counter()
    inflight.register("pysvc.inflight", descr="requests in flight", gauge=True)
    codes = percpu.CounterArray(3)
    codes.register("pysvc.codes", descr="replies by class", labels={"service": "py"},
                   element_label="code", element_values=["2xx", "4xx", "5xx"])
    hidden = percpu.Counter()
    hidden.register("pysvc.bytes", hidden=True)
    hidden.add(99)
    requests.add(2**40)

    def work(t):
        for i in range(iters):
            requests.add(1)
            codes.add(i % 3, t + 1)
            inflight.add(1)
            inflight.add(-1)
        inflight.add(-(t + 1))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words and words[0] == "prom" and len(words) <= 2:
            sys.stdout.write(percpu.sysctl.prometheus(*words[1:]))
            print("end", flush=True)
        else:
            print(f"unknown command {line!r}", flush=True)
    for c in (requests, inflight, codes, hidden):
        c.close()


if __name__ == "__main__":
    main()
