# SPDX-License-Identifier: MIT
"""Exact values from outside (issue 17): the C service (stat_service.c,
publishing with counter_sysctl_publish()) and the Python service
(stat_service.py, publishing through PERCPU_PUBLISH=1) each add from
several threads, then say "ready"; at that quiescence

  - `percpu-stat -1 PID` prints exactly the expected lines (polled, with
    a cap, for the values the library mirrors: a counter made before
    publication, a static leaf's late handle), every line well formed;
    `-1 PID PREFIX` only the names under PREFIX;
  - `--json PID` has the pid, the command (/proc/PID/comm) and exactly
    the expected counters (name, metric, kind, help, labels, value,
    index/length);
  - `--prometheus PID` has the expected samples and types, is byte for
    byte what the service's own counter_sysctl_prometheus() /
    percpu.sysctl.prometheus() prints, and passes
    `promtool check metrics`; `--prefix app_` puts app_ before every
    metric name, is the process's own dump with that prefix, and passes
    too.

Negative controls: the checkers report a wrong, a missing and an extra
value and refuse malformed -1 lines, and one expected value off by one
on the live -1 answer; promtool must fail on two
hand-broken copies of each live exposition (so the check runs).
"""

import sys

import statlib
from statlib import Failure, fail

C_THREADS, C_ITERS = 8, 100000
PY_THREADS, PY_ITERS = 4, 20000


def check_the_checkers():
    expected = {"a.b": 1, "a.c[0]": -2}
    assert statlib.once_mismatches(expected, dict(expected)) == []
    assert statlib.once_mismatches(expected, {"a.b": 2, "a.c[0]": -2}) == [
        "a.b: got 2, expected 1"]
    assert statlib.once_mismatches(expected, {"a.b": 1}) == ["a.c[0]: missing, expected -2"]
    assert statlib.once_mismatches(expected, {**expected, "x": 0}) == ["x: unexpected, value 0"]
    assert statlib.parse_once("a.b 1\na.c[0] -2\n") == expected
    for bad in ("a.b 1 2\n", "a.b\n", "a.c[x] 1\n", "a..b 1\n", "a.b 01\n", "a.b -0\n",
                "a.b 1\na.b 1\n", " a.b 1\n", "a.c[01] 3\n"):
        try:
            statlib.parse_once(bad)
        except Failure:
            continue
        raise AssertionError(f"parse_once accepted {bad!r}")
    samples, types = statlib.parse_prometheus(
        '# HELP x_total h\n# TYPE x_total counter\nx_total{a="1",b="q\\""} 5\ny -3\n')
    assert samples == {("x_total", frozenset({("a", "1"), ("b", 'q\\"')})): 5,
                       ("y", frozenset()): -3}, samples
    assert types == {"x_total": "counter"}
    assert statlib.dict_mismatches({"k": 1}, {"k": 2}) == ["k: got 2, expected 1"]


def broken_copies(text):
    """Two hand-broken copies of an exposition that promtool must refuse:
    every label value unquoted, and the first TYPE line repeated."""
    unquoted = text.replace('="', "=").replace('"}', "}").replace('",', ",")
    lines = text.splitlines(keepends=True)
    first_type = next(i for i, l in enumerate(lines) if l.startswith("# TYPE "))
    twice = "".join(lines[:first_type + 1] + [lines[first_type]] + lines[first_type + 1:])
    assert unquoted != text, "no label to unquote"
    return {"unquoted label values": unquoted, "a TYPE line twice": twice}


def check_service(svc, leaves, name_prefix):
    pid = svc.pid
    label = f"{svc.name} (pid {pid})"
    once = statlib.once_expected(leaves)
    live = statlib.wait_for_once(pid, once)
    # Negative control on the live answer: one expected value off by one
    # (an array element's) is reported, and only it.
    wrong = dict(once)
    wrong[f"{name_prefix}.codes[1]"] += 1
    assert statlib.once_mismatches(wrong, live) == [
        f"{name_prefix}.codes[1]: got {once[f'{name_prefix}.codes[1]']}, expected "
        f"{wrong[f'{name_prefix}.codes[1]']}"], statlib.once_mismatches(wrong, live)
    print(f"{label}: -1 exact, {len(once)} lines")

    # -1 with a prefix: only the names under it.
    codes = {k: v for k, v in once.items() if k.startswith(f"{name_prefix}.codes")}
    got = statlib.parse_once(statlib.stat_ok("-1", pid, f"{name_prefix}.codes"))
    bad = statlib.once_mismatches(codes, got)
    if bad or len(codes) != 3:
        fail(f"{label}: -1 {pid} {name_prefix}.codes:\n  " + "\n  ".join(bad))
    if statlib.stat_ok("-1", pid, f"{name_prefix}.nothing_here") != "":
        fail(f"{label}: -1 with a prefix matching nothing printed something")

    # --json.
    doc, counters = statlib.json_counters(statlib.stat_ok("--json", pid))
    with open(f"/proc/{pid}/comm") as f:
        comm = f.read().rstrip("\n")
    if doc.get("pid") != pid or doc.get("command") != comm:
        fail(f"{label}: --json pid/command {doc.get('pid')!r}/{doc.get('command')!r}, "
             f"expected {pid}/{comm!r}")
    want = statlib.json_expected(leaves)
    if counters != want:
        got_by = {(c.get("name"), c.get("index")): c for c in counters}
        want_by = {(c["name"], c.get("index")): c for c in want}
        fail(f"{label}: --json counters differ:\n  " +
             "\n  ".join(statlib.dict_mismatches(want_by, got_by)))
    print(f"{label}: --json exact, {len(counters)} counters")

    # --prometheus: values, types, byte-for-byte the in-process dump.
    text = statlib.stat_ok("--prometheus", pid)
    samples, types = statlib.parse_prometheus(text)
    want_samples, want_types = statlib.prometheus_expected(leaves)
    bad = statlib.dict_mismatches(want_samples, samples) + statlib.dict_mismatches(want_types,
                                                                                    types)
    if bad:
        fail(f"{label}: --prometheus differs:\n  " + "\n  ".join(bad))
    own = svc.command("prom")
    if text != own:
        fail(f"{label}: --prometheus is not the process's own dump.\n"
             f"percpu-stat:\n{text}\nin-process:\n{own}")
    rc, out = statlib.promtool_check(text)
    if rc != 0:
        fail(f"{label}: promtool check metrics refused --prometheus (exit {rc}): {out}\n{text}")
    for what, broken in broken_copies(text).items():
        rc, out = statlib.promtool_check(broken)
        if rc == 0:
            fail(f"{label}: negative control: promtool check metrics accepted {what}")
    print(f"{label}: --prometheus exact, own dump byte for byte, promtool ok "
          "(and refuses 2 broken copies)")

    # --prometheus --prefix.
    text = statlib.stat_ok("--prometheus", "--prefix", "app_", pid)
    samples, types = statlib.parse_prometheus(text)
    want_samples, want_types = statlib.prometheus_expected(leaves, "app_")
    bad = statlib.dict_mismatches(want_samples, samples) + statlib.dict_mismatches(want_types,
                                                                                    types)
    if bad:
        fail(f"{label}: --prometheus --prefix app_ differs:\n  " + "\n  ".join(bad))
    own = svc.command("prom app_")
    if text != own:
        fail(f"{label}: --prometheus --prefix app_ is not the process's own dump with that "
             f"prefix.\npercpu-stat:\n{text}\nin-process:\n{own}")
    rc, out = statlib.promtool_check(text)
    if rc != 0:
        fail(f"{label}: promtool check metrics refused --prefix app_ (exit {rc}): {out}")


def main():
    check_the_checkers()
    services = []
    try:
        c = statlib.c_service("values", C_THREADS, C_ITERS)
        services.append(c)
        py = statlib.py_service(PY_THREADS, PY_ITERS)
        services.append(py)
        check_service(c, statlib.c_leaves(C_THREADS, C_ITERS), "svc")
        check_service(py, statlib.py_leaves(PY_THREADS, PY_ITERS), "pysvc")
        for s in services:
            statlib.check_clean_exit(s)
    except Failure as e:
        sys.exit(f"values_test: FAIL: {e}")
    finally:
        for s in services:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
    print("values_test: ok")


if __name__ == "__main__":
    main()
