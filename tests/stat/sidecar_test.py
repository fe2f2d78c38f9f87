# SPDX-License-Identifier: MIT
"""The sidecar scraped by a real Prometheus (issue 17): the C service
(stat_service.c) and the Python service (stat_service.py) publish;
`percpu-stat serve --listen 127.0.0.1:0` (port printed on stdout)
exports every publishing process; its /metrics passes
`promtool check metrics`; a real Prometheus server (Debian's, configured
as tests/prometheus/prometheus_server_test.py does) scrapes it every
second, and its HTTP API is asked until every series of both services is
there, labelled with the service's pid and command (/proc/PID/comm),
with the exact value (all below 2**53), or DEADLINE_S passes (a failure
naming what is missing or wrong).

Other processes publishing on the machine (other tests) are exported
too: only the series of this test's two pids are compared, exactly (no
series missing, none extra).  Negative control: the checker reports a
wrong value, a missing and an unexpected series on made-up answers, and
one value off by one on the live answer.
"""

import os
import re
import select
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import promserver
import statlib
from statlib import Failure, fail

DEADLINE_S = 60
C_THREADS, C_ITERS = 4, 20000
PY_THREADS, PY_ITERS = 3, 5000


def expected_series(svc, leaves):
    with open(f"/proc/{svc.pid}/comm") as f:
        comm = f.read().rstrip("\n")
    samples, _ = statlib.prometheus_expected(leaves)
    return {(name, labels | {("pid", str(svc.pid)), ("command", comm)}): v
            for (name, labels), v in samples.items()}


def series(result, pids):
    """{(name, labels without job/instance): value string} of the series
    labelled with one of pids, from a range query: every value in the
    range must be the same, else the distinct ones joined by "|"."""
    out = {}
    for s in result:
        m = dict(s["metric"])
        if m.get("pid") not in pids:
            continue
        m.pop("job", None)
        m.pop("instance", None)
        name = m.pop("__name__")
        values = sorted({v for _, v in s["values"]}, key=float)
        out[(name, frozenset(m.items()))] = "|".join(values)
    return out


def check_the_checker():
    key = ("svc_inflight", frozenset({("pid", "7"), ("command", "x")}))
    other = ("svc_requests_total", frozenset({("pid", "7"), ("command", "x")}))
    expected = {key: -3, other: 10}
    assert promserver.mismatches(expected, {key: "-3", other: "10"}) == []
    assert promserver.mismatches(expected, {key: "3", other: "10"}) == [
        'svc_inflight{command="x",pid="7"}: got 3, expected -3']
    assert len(promserver.mismatches(expected, {key: "-3"})) == 1
    assert len(promserver.mismatches(expected, {key: "-3", other: "10", ("y", frozenset()): "1"})) == 1
    assert len(promserver.mismatches(expected, {key: "-3|-2", other: "10"})) == 1
    result = [{"metric": {"__name__": "svc_inflight", "pid": "7", "command": "x", "job": "j",
                          "instance": "i"}, "values": [[1, "-3"], [2, "-3"]]},
              {"metric": {"__name__": "svc_inflight", "pid": "8", "command": "x"},
               "values": [[1, "1"]]}]
    assert series(result, {"7"}) == {key: "-3"}


def start_serve(log):
    p = subprocess.Popen([statlib.percpu_stat(), "serve", "--listen", "127.0.0.1:0"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
    ready, _, _ = select.select([p.stdout], [], [], DEADLINE_S)
    line = p.stdout.readline().decode() if ready else ""
    m = re.search(r"127\.0\.0\.1:([0-9]+)", line)
    if not m or int(m.group(1)) == 0:
        p.kill()
        p.wait()
        fail(f"percpu-stat serve did not print its port (got {line!r}, exit {p.returncode})")
    return p, int(m.group(1))


def main():
    check_the_checker()
    if not promserver.prometheus_path():
        sys.exit("sidecar_test: no prometheus on PATH (Debian's prometheus; "
                 "tools/bootstrap.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="sidecar.", dir=os.environ.get("TEST_TMPDIR"))
    logs = {n: open(os.path.join(tmp, n + ".log"), "w+") for n in ("serve", "prometheus")}
    services, procs = [], []
    try:
        c = statlib.c_service("values", C_THREADS, C_ITERS)
        services.append(c)
        py = statlib.py_service(PY_THREADS, PY_ITERS)
        services.append(py)
        c_leaves = statlib.c_leaves(C_THREADS, C_ITERS)
        py_leaves = statlib.py_leaves(PY_THREADS, PY_ITERS)
        # Quiescent and mirrored before the first scrape: one value per series.
        statlib.wait_for_once(c.pid, statlib.once_expected(c_leaves))
        statlib.wait_for_once(py.pid, statlib.once_expected(py_leaves))
        expected = expected_series(c, c_leaves) | expected_series(py, py_leaves)
        pids = {str(c.pid), str(py.pid)}

        serve, port = start_serve(logs["serve"])
        procs.append(serve)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        rc, out = statlib.promtool_check(text)
        if rc != 0:
            fail(f"promtool check metrics refused the sidecar's /metrics (exit {rc}): {out}")
        rc, _ = statlib.promtool_check(text.replace('pid="', 'pid=', 1))
        if rc == 0:
            fail("negative control: promtool accepted the sidecar's /metrics with an "
                 "unquoted label value")
        print(f"serve on port {port}: /metrics passes promtool check metrics")

        server, api = promserver.start(tmp, {"sidecar": port}, logs["prometheus"])
        procs.append(server)

        deadline = time.monotonic() + DEADLINE_S
        bad = ["no answer from prometheus yet"]
        got = {}
        while time.monotonic() < deadline and server.poll() is None and serve.poll() is None:
            try:
                got = series(promserver.query(api, '{__name__=~"svc_.*|pysvc_.*"}[1m]'), pids)
                bad = promserver.mismatches(expected, got)
            except OSError as e:
                bad = [f"prometheus not answering: {e}"]
            if not bad:
                break
            time.sleep(0.2)
        if server.poll() is not None:
            logs["prometheus"].seek(0)
            fail(f"prometheus exited {server.returncode}:\n{logs['prometheus'].read()[-3000:]}")
        if serve.poll() is not None:
            logs["serve"].seek(0)
            fail(f"percpu-stat serve exited {serve.returncode}: {logs['serve'].read()}")
        if bad:
            fail(f"after {DEADLINE_S} s the series scraped differ from the expected:\n  " +
                 "\n  ".join(bad))
        # Negative control on the live answer: one value off by one.
        key = next(k for k in expected if k[0] == "pysvc_codes_total")
        wrong = dict(expected)
        wrong[key] += 1
        live = promserver.mismatches(wrong, got)
        assert len(live) == 1 and "pysvc_codes_total" in live[0], live
        print(f"prometheus: all {len(expected)} series of pids {sorted(pids)} exact, "
              "with their pid and command labels")
        for s in services:
            statlib.check_clean_exit(s)
    except Failure as e:
        sys.exit(f"sidecar_test: FAIL: {e}")
    finally:
        for s in services:
            if s.proc.poll() is None:
                s.proc.kill()
        for p in reversed(procs):
            p.terminate()
        for p in procs + [s.proc for s in services]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    print("sidecar_test: ok")


if __name__ == "__main__":
    main()
