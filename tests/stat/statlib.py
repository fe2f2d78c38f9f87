# SPDX-License-Identifier: MIT
"""What the stats-segment end-to-end tests share: finding the runfiles,
starting a service (stat_service.c or stat_service.py) and waiting for
its "ready" handshake, running percpu-stat, parsing its outputs, and the
exact values each service publishes (the leaves as a table, from which
the -1, --json and Prometheus expectations are all derived).

Waits are bounded and fail with a message: DEADLINE_S guards a handshake
or one command against a broken setup; VALUE_WAIT_S caps the polling for
values published through the library's mirror (a counter made before
publication, a static leaf's late handle), refreshed a few times a
second.  Verdicts are the values, never the time taken."""

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time

DEADLINE_S = 60
VALUE_WAIT_S = 30
PYTHON = "/usr/bin/python3"  # the interpreter the extension is built for

HERE = os.path.dirname(os.path.abspath(__file__))

# A -1 line: "name value" or "name[i] value"; a name is dotted words.
ONCE_LINE = re.compile(r"^([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)(?:\[(0|[1-9][0-9]*)\])? "
                       r"(0|-?[1-9][0-9]*)$")


class Failure(Exception):
    """A check failed; the message says which and why."""


def fail(msg):
    raise Failure(msg)


def runfile(rel):
    """A runfile by its path in the workspace (tests/stat/..., cli/...)."""
    roots = [os.path.join(os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", "")),
             os.path.dirname(os.path.dirname(HERE))]
    for root in roots:
        p = os.path.join(root, rel)
        if os.path.exists(p):
            return os.path.abspath(p)
    sys.exit(f"statlib: runfile {rel} not found (looked under {roots})")


def percpu_stat():
    return runfile("cli/percpu-stat/percpu-stat")


def tmpdir():
    return os.environ.get("TEST_TMPDIR") or "/tmp"


# ---- services ----------------------------------------------------------------

class Service:
    """A service child: stdin and stdout are pipes (stdin closing ends it),
    stderr goes to a log file.  start() returns once it printed "ready";
    the lines before it ("child PID", "parent PID") are kept in .said."""

    def __init__(self, argv, name, env=None):
        self.name = name
        self.log = open(os.path.join(tmpdir(), f"{name}.{os.getpid()}.log"), "w+")
        # Unbuffered stdout: a line at a time, so select() sees what is
        # not read yet (a buffered reader would take several lines at once).
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env, bufsize=0)
        self.pid = self.proc.pid
        self.said = {}
        self.returncode = None

    def readline(self, what):
        ready, _, _ = select.select([self.proc.stdout], [], [], DEADLINE_S)
        line = self.proc.stdout.readline().decode() if ready else None
        if not line:
            self.proc.kill()
            self.proc.wait()
            fail(f"{self.name}: no {what} within {DEADLINE_S} s (got "
                 f"{'nothing' if line is None else 'EOF'}, exit {self.proc.returncode}); "
                 f"stderr: {self.stderr()!r}")
        return line

    def wait_ready(self):
        while True:
            line = self.readline('"ready"')
            if line == "ready\n":
                return self
            word, _, value = line.partition(" ")
            self.said[word] = int(value)

    def command(self, cmd):
        """Send a stdin command; its answer, up to the line "end"."""
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()
        out = []
        while (line := self.readline(f"answer to {cmd!r}")) != "end\n":
            out.append(line)
        return "".join(out)

    def stop(self):
        """Close stdin (the service exits); its exit status."""
        if self.returncode is None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.returncode = self.proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail(f"{self.name}: did not exit within {DEADLINE_S} s of stdin closing")
        return self.returncode

    def stderr(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def c_service(mode, threads, iters):
    env = dict(os.environ)
    env.pop("PERCPU_PUBLISH", None)  # it publishes by calling counter_sysctl_publish()
    return Service([runfile("tests/stat/stat_service"), mode, str(threads), str(iters)],
                   f"stat_service_{mode}", env).wait_ready()


def py_service(threads, iters):
    env = dict(os.environ, PERCPU_PUBLISH="1")
    return Service([PYTHON, runfile("tests/stat/stat_service.py"), str(threads),
                    str(iters)], "stat_service_py", env).wait_ready()


SANITIZER_BANNERS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer",
                     "ERROR: LeakSanitizer", "runtime error:")


def check_clean_exit(service):
    """The service exited 0 and its stderr has no sanitizer report."""
    rc = service.stop()
    err = service.stderr()
    bad = [b for b in SANITIZER_BANNERS if b in err]
    if rc != 0 or bad:
        fail(f"{service.name} (pid {service.pid}): exit {rc}, sanitizer reports {bad}; "
             f"stderr:\n{err[-4000:]}")


# ---- percpu-stat ---------------------------------------------------------------

def stat(*args, prefix_argv=()):
    """Run percpu-stat; the CompletedProcess (text)."""
    try:
        return subprocess.run([*prefix_argv, percpu_stat(), *map(str, args)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        fail(f"percpu-stat {' '.join(map(str, args))}: still running after {DEADLINE_S} s")


def stat_ok(*args):
    r = stat(*args)
    if r.returncode != 0:
        fail(f"percpu-stat {' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


# percpu-stat's exit statuses (percpu-stat --help, docs/percpu-stat.md).
EXIT_NO_PROCESS, EXIT_PERMISSION, EXIT_NOT_PUBLISHING = 3, 4, 5


def error_problems(r, pid, words=(), status=None):
    """What is wrong with a failure of percpu-stat (r) about pid, as a
    list of sentences ([]: it failed cleanly): a non-zero exit (`status`
    if given), nothing on stdout, one line on stderr naming the pid and
    containing every one of `words` (case-insensitive)."""
    out = []
    lines = r.stderr.splitlines()
    if r.returncode == 0:
        out.append("exit status 0, expected a failure")
    elif status is not None and r.returncode != status:
        out.append(f"exit status {r.returncode}, expected {status}")
    if r.returncode < 0 or r.returncode > 100:
        out.append(f"exit status {r.returncode}: a crash or a signal, not an error exit")
    if r.stdout:
        out.append(f"stdout not empty: {r.stdout[:200]!r}")
    if len(lines) != 1:
        out.append(f"{len(lines)} lines on stderr, expected 1: {r.stderr[:500]!r}")
    elif not re.search(rf"\bpid {pid}\b", lines[0]):
        out.append(f"the message does not name pid {pid}: {lines[0]!r}")
    for w in words:
        if lines and w.lower() not in r.stderr.lower():
            out.append(f"the message does not say {w!r}: {r.stderr.strip()!r}")
    return out


def parse_once(text):
    """{display name: value} of a -1 output; Failure on a malformed or
    repeated line."""
    out = {}
    for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else
                             text.split("\n") if text else []):
        m = ONCE_LINE.match(line)
        if not m:
            fail(f"-1 line {n + 1} is malformed: {line!r}")
        name = m.group(1) + (f"[{m.group(2)}]" if m.group(2) is not None else "")
        if name in out:
            fail(f"-1 line {n + 1}: {name} printed twice")
        out[name] = int(m.group(3))
    return out


def once_mismatches(expected, got):
    """Each difference between two {display name: value}, as a sentence."""
    out = []
    for k in sorted(set(expected) | set(got)):
        if k not in got:
            out.append(f"{k}: missing, expected {expected[k]}")
        elif k not in expected:
            out.append(f"{k}: unexpected, value {got[k]}")
        elif got[k] != expected[k]:
            out.append(f"{k}: got {got[k]}, expected {expected[k]}")
    return out


def wait_for_once(pid, expected, *prefix, ignore=()):
    """Poll `percpu-stat -1 pid [prefix]` until it shows exactly
    `expected` (VALUE_WAIT_S at most: the mirror's refresh), apart from
    the names in `ignore`; its output (all of it).  Every run must
    succeed and be well formed."""
    deadline = time.monotonic() + VALUE_WAIT_S
    runs = 0
    while True:
        runs += 1
        got = parse_once(stat_ok("-1", pid, *prefix))
        bad = once_mismatches(expected, {k: v for k, v in got.items() if k not in ignore})
        if not bad:
            return got
        if time.monotonic() > deadline:
            fail(f"percpu-stat {' '.join(map(str, ['-1', pid, *prefix]))}: not the expected values after "
                 f"{VALUE_WAIT_S} s ({runs} runs):\n  " + "\n  ".join(bad))
        time.sleep(0.05)


# ---- the values the services publish -----------------------------------------

class Leaf:
    """One published leaf: its dotted name, Prometheus metric name, kind,
    help, constant labels (pairs, in order), element label and values
    (arrays), and value(s)."""

    def __init__(self, name, metric, kind, help, value, labels=(), elem_label=None,
                 elem_values=None):
        self.name, self.metric, self.kind, self.help = name, metric, kind, help
        self.value, self.labels = value, list(labels)
        self.elem_label, self.elem_values = elem_label, elem_values

    def elements(self):
        """(display name, index or None, labels as pairs, value) each."""
        if not isinstance(self.value, list):
            return [(self.name, None, self.labels, self.value)]
        return [(f"{self.name}[{i}]", i, self.labels + [(self.elem_label, self.elem_values[i])], v)
                for i, v in enumerate(self.value)]


def _codes(threads, iters):
    return [threads * (threads + 1) // 2 * len(range(k, iters, 3)) for k in range(3)]


def c_leaves(threads, iters):
    return [
        Leaf("svc.codes", "svc_codes_total", "counter", "replies by class", _codes(threads, iters),
             [("service", "c")], "code", ["2xx", "4xx", "5xx"]),
        Leaf("svc.early", "svc_early_total", "counter", "Counter svc.early",
             41 + 2 * threads * iters),
        Leaf("svc.inflight", "svc_inflight", "gauge", "requests in flight",
             -threads * (threads + 1) // 2),
        Leaf("svc.requests", "svc_requests_total", "counter", "requests served",
             2**40 + threads * iters),
        Leaf("svc.static.late", "svc_static_late_total", "counter",
             "allocated after registration", 3 * threads * iters),
    ]


# The C service's leaves whose values reach the segment through the
# library's watcher thread: svc.early (made before publication, mirrored)
# and svc.static.late (a static leaf's handle resolved late).
C_MIRRORED = ("svc.early", "svc.static.late")


def c_child_leaves(threads, iters):
    """What the fork mode's child publishes."""
    out = []
    for leaf in c_leaves(threads, iters):
        if leaf.name == "svc.requests":
            leaf.value += 1000
        if leaf.name == "svc.inflight":
            leaf.value -= 10
        if leaf.name == "svc.early":
            leaf.value += 7
        if leaf.name == "svc.static.late":
            leaf.value += 11
        out.append(leaf)
    out.append(Leaf("svc.child_only", "svc_child_only_total", "counter",
                    "registered in the child", 5))
    return out


def py_leaves(threads, iters):
    return [
        Leaf("pysvc.codes", "pysvc_codes_total", "counter", "replies by class",
             _codes(threads, iters), [("service", "py")], "code", ["2xx", "4xx", "5xx"]),
        Leaf("pysvc.inflight", "pysvc_inflight", "gauge", "requests in flight",
             -threads * (threads + 1) // 2),
        Leaf("pysvc.requests", "pysvc_requests_total", "counter", "requests served",
             2**40 + threads * iters),
    ]


def once_expected(leaves):
    return {d: v for leaf in leaves for d, _, _, v in leaf.elements()}


def json_expected(leaves):
    """The --json counters, each a dict, sorted by (name, index)."""
    out = []
    for leaf in leaves:
        for _, i, labels, v in leaf.elements():
            c = {"name": leaf.name, "metric": leaf.metric, "kind": leaf.kind, "help": leaf.help,
                 "labels": dict(labels), "value": v}
            if i is not None:
                c.update(index=i, length=len(leaf.value))
            out.append(c)
    return sorted(out, key=lambda c: (c["name"], c.get("index", 0)))


def prometheus_expected(leaves, prefix=""):
    """{(metric, frozenset of labels): value} and {metric: type}."""
    samples, types = {}, {}
    for leaf in leaves:
        types[prefix + leaf.metric] = leaf.kind
        for _, _, labels, v in leaf.elements():
            samples[(prefix + leaf.metric, frozenset(labels))] = v
    return samples, types


# ---- the Prometheus text format ----------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9]+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_prometheus(text):
    """({(metric, frozenset of labels): int}, {metric: type}) of an
    exposition whose values are integers; Failure on a line it does not
    read (promtool is the format's judge; this reads values)."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(f"exposition line not read: {line!r}")
        labels, rest = [], m.group(2) or ""
        while rest:
            lm = LABEL.match(rest)
            if not lm:
                fail(f"exposition labels not read: {line!r}")
            labels.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end():]
        samples[(m.group(1), frozenset(labels))] = int(m.group(3))
    return samples, types


def promtool():
    p = shutil.which("promtool")
    if not p:
        sys.exit("statlib: no promtool on PATH (Debian's prometheus; tools/bootstrap.sh "
                 "installs it)")
    return p


def promtool_check(text):
    """(exit status, output) of `promtool check metrics` on text."""
    try:
        r = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        fail(f"promtool check metrics: still running after {DEADLINE_S} s")
    return r.returncode, (r.stdout + r.stderr).strip()


def dict_mismatches(expected, got):
    """Each difference between two dicts, as a sentence."""
    out = []
    for k in sorted(set(expected) | set(got), key=repr):
        if k not in got:
            out.append(f"{k}: missing, expected {expected[k]!r}")
        elif k not in expected:
            out.append(f"{k}: unexpected, got {got[k]!r}")
        elif got[k] != expected[k]:
            out.append(f"{k}: got {got[k]!r}, expected {expected[k]!r}")
    return out


def json_counters(text):
    """The --json document's counters, sorted by (name, index)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        fail(f"--json output is not JSON ({e}): {text[:300]!r}")
    return doc, sorted(doc.get("counters", []), key=lambda c: (c.get("name"), c.get("index", 0)))
