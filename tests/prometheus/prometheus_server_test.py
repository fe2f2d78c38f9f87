# SPDX-License-Identifier: MIT
"""A real Prometheus server (Debian's prometheus, tools/bootstrap.sh)
scrapes the C /metrics endpoint (c_target.c, <percpu/metrics_http.h>)
and a Python start_http_server with percpu.prometheus.Collector
(py_target.py) every second; the test asks its HTTP API
(/api/v1/query) for `up` and for every series of both targets and
checks every value scraped exactly (all below 2**53): counters, arrays
with their labels, a gauge with a negative sum.

Everything is on 127.0.0.1 at ports the kernel picks; Prometheus keeps
its data in $TEST_TMPDIR.  The deadline (DEADLINE_S) only keeps a broken
setup from hanging: the verdict is the values.  Negative control, in
the test: the checker reports a deliberately wrong expected value, a
missing series and an unexpected one, on made-up answers and on the
live one.
"""

import os
import select
import subprocess
import sys
import tempfile
import time

import promserver

DEADLINE_S = 60

# (metric name, frozenset of labels other than job/instance): value.
C_EXPECTED = {
    ("promsrv_c_requests_total", frozenset()): 1234567890123,
    ("promsrv_c_codes_total", frozenset({("service", "api"), ("code", "2xx")})): 1000,
    ("promsrv_c_codes_total", frozenset({("service", "api"), ("code", "4xx")})): 17,
    ("promsrv_c_codes_total", frozenset({("service", "api"), ("code", "5xx")})): 0,
    ("promsrv_c_inflight", frozenset()): -42,
}
PY_EXPECTED = {
    ("promsrv_py_requests_total", frozenset()): 2**50 + 3,
    ("promsrv_py_shards_total", frozenset({("index", "0")})): 11,
    ("promsrv_py_shards_total", frozenset({("index", "1")})): 2**40,
}

HERE = os.path.dirname(os.path.abspath(__file__))


def runfile(name):
    for d in (HERE, os.path.join(os.environ.get("TEST_SRCDIR", ""),
                                 os.environ.get("TEST_WORKSPACE", ""), "tests/prometheus")):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    sys.exit(f"prometheus_server_test: {name} not found next to the test")


def start_target(argv, log):
    """Start a target; return (process, port) once it printed "port N"."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=log)
    ready, _, _ = select.select([p.stdout], [], [], DEADLINE_S)
    line = p.stdout.readline().decode() if ready else ""
    if not line.startswith("port "):
        p.kill()
        sys.exit(f"prometheus_server_test: {argv[-1]} did not print its port "
                 f"(got {line!r}, exit {p.poll()}); see {log.name}")
    return p, int(line.split()[1])


def series(result, job):
    """{(name, labels without job/instance): value string} of one job,
    from a range query (a matrix): every value scraped in the range must
    be the same, else the value is the distinct ones joined by "|"
    (which the checker reports)."""
    out = {}
    for s in result:
        m = dict(s["metric"])
        if m.pop("job", None) != job:
            continue
        m.pop("instance", None)
        name = m.pop("__name__")
        values = sorted({v for _, v in s["values"]}, key=float)
        out[(name, frozenset(m.items()))] = "|".join(values)
    return out


def check_the_checker():
    """Negative control: a wrong value, a missing and an extra series
    are each reported."""
    got = {k: str(v) for k, v in C_EXPECTED.items()}
    assert promserver.mismatches(C_EXPECTED, got) == []
    wrong = dict(C_EXPECTED)
    wrong[("promsrv_c_inflight", frozenset())] = 42
    assert promserver.mismatches(wrong, got) == ['promsrv_c_inflight{}: got -42, expected 42'], \
        promserver.mismatches(wrong, got)
    fewer = dict(got)
    del fewer[("promsrv_c_requests_total", frozenset())]
    assert promserver.mismatches(C_EXPECTED, fewer) == [
        "promsrv_c_requests_total{}: missing, expected 1234567890123"]
    more = dict(got)
    more[("promsrv_c_extra", frozenset())] = "1"
    assert promserver.mismatches(C_EXPECTED, more) == ["promsrv_c_extra{}: unexpected series, value 1"]
    off_by_one = dict(got)
    off_by_one[("promsrv_c_requests_total", frozenset())] = "1234567890124"
    assert len(promserver.mismatches(C_EXPECTED, off_by_one)) == 1
    changing = dict(got)
    changing[("promsrv_c_inflight", frozenset())] = "-42|-41"
    assert promserver.mismatches(C_EXPECTED, changing) == [
        "promsrv_c_inflight{}: got -42|-41, expected -42"]


def main():
    check_the_checker()
    if not promserver.prometheus_path():
        sys.exit("prometheus_server_test: no prometheus on PATH (Debian's "
                 "prometheus; tools/bootstrap.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="promsrv.", dir=os.environ.get("TEST_TMPDIR"))
    logs = {n: open(os.path.join(tmp, n + ".log"), "w+") for n in ("c", "py", "prometheus")}
    procs = []
    try:
        c, c_port = start_target([runfile("c_target")], logs["c"])
        procs.append(c)
        py, py_port = start_target([sys.executable, runfile("py_target.py")], logs["py"])
        procs.append(py)
        server, api = promserver.start(tmp, {"c": c_port, "py": py_port}, logs["prometheus"])
        procs.append(server)

        deadline = time.monotonic() + DEADLINE_S
        up = {}
        while time.monotonic() < deadline and server.poll() is None:
            try:
                up = {s["metric"]["job"]: s["value"][1] for s in promserver.query(api, "up")}
            except OSError:
                up = {}  # not listening yet
            if up.get("c") == "1" and up.get("py") == "1":
                break
            time.sleep(0.2)
        if server.poll() is not None:
            logs["prometheus"].seek(0)
            sys.exit("prometheus_server_test: prometheus exited "
                     f"{server.returncode}:\n{logs['prometheus'].read()[-3000:]}")
        if up != {"c": "1", "py": "1"}:
            sys.exit(f"prometheus_server_test: up is {up} after {DEADLINE_S} s, "
                     "expected 1 for jobs c and py")
        print(f"up: {up}")

        # Every sample of the last minute, not an instant vector: a later
        # scrape that times out (a loaded machine) leaves staleness
        # markers that would hide the series from an instant query, and
        # a range selector skips them.  Every value scraped must be exact.
        result = promserver.query(api, '{__name__=~"promsrv_.*"}[1m]')
        bad = promserver.mismatches(C_EXPECTED, series(result, "c"))
        bad += promserver.mismatches(PY_EXPECTED, series(result, "py"))
        for line in bad:
            print("MISMATCH", line)
        if bad:
            sys.exit(f"prometheus_server_test: {len(bad)} series differ from the expected values")
        # Negative control on the live answer: one expected value off by
        # one (an array element's) is reported, and only it.
        wrong = dict(C_EXPECTED)
        key = ("promsrv_c_codes_total", frozenset({("service", "api"), ("code", "4xx")}))
        wrong[key] = 18
        live = promserver.mismatches(wrong, series(result, "c"))
        assert live == ['promsrv_c_codes_total{code="4xx",service="api"}: got 17, expected 18'], live
        print(f"all {len(C_EXPECTED) + len(PY_EXPECTED)} series exact "
              f"({len(C_EXPECTED)} from C, {len(PY_EXPECTED)} from Python)")
    finally:
        for p in reversed(procs):
            if p.stdin:
                p.stdin.close()  # the targets serve until stdin closes
            else:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    print("prometheus_server_test: ok")


if __name__ == "__main__":
    main()
