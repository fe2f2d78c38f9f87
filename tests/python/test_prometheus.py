# SPDX-License-Identifier: MIT
"""percpu.prometheus.Collector: the sysctl tree through prometheus_client.

The exposition generate_latest() makes with only this collector must
describe the samples of the C dump (percpu.sysctl.prometheus()): same
sample names, label sets, values and types; promtool must accept it.
The samples are read by a small parser of this file's own, not by
prometheus_client's (which the collector itself uses).
"""

import errno
import os
import re
import shutil
import subprocess
import sys

import pytest

import percpu
from percpu import PercpuError

prometheus_client = pytest.importorskip(
    "prometheus_client",
    reason="python3-prometheus-client is not installed (tools/bootstrap.sh installs it)")
import percpu.prometheus  # noqa: E402  (after the importorskip)

_SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def samples(text, prefix):
    """{(sample name, frozenset of label pairs): value} and {family: type}
    for the metrics of `text` whose names start with `prefix`."""
    out, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            if name.startswith(prefix):
                types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparsable sample line {line!r}"
        name, labels, value = m.groups()
        if not name.startswith(prefix):
            continue
        pairs = frozenset(_LABEL.findall(labels or ""))
        v = float(value)
        assert v == int(v), f"{line!r}: not an integer"
        key = (name, pairs)
        assert key not in out, f"sample {key} twice"
        out[key] = int(v)
    return out, types


def same_samples(a, b):
    """A list of the differences between two samples() results."""
    diff = []
    for key in sorted(set(a) | set(b), key=repr):
        if a.get(key) != b.get(key):
            diff.append(f"{key}: {a.get(key)!r} != {b.get(key)!r}")
    return diff


@pytest.fixture
def tree(pc):
    prefix = f"pyprom_{pc.name}"
    yield prefix
    for name in pc.sysctl.names(prefix):
        pc.sysctl.unregister(name)


def exposition(*collectors):
    registry = prometheus_client.CollectorRegistry()
    for c in collectors:
        registry.register(c)
    return prometheus_client.generate_latest(registry).decode()


def fill(pc, tree):
    big = 2**40 + 7  # exact in a float64, as Prometheus keeps it
    c = pc.Counter()
    c.add(big)
    c.register(f"{tree}.http.requests", descr='requests "served" \\ total')
    z = pc.Counter()
    z.register(f"{tree}.http.zero", descr="")
    a = pc.CounterArray(3)
    a.add(0, 5)
    a.add(2, 2**33)
    a.register(f"{tree}.http.codes", descr="by class")
    return (c, z, a), big


def test_collector_matches_c_dump(pc, tree):
    objs, big = fill(pc, tree)
    prefix = tree + "_"
    c_samples, c_types = samples(pc.sysctl.prometheus(), prefix)
    py_text = exposition(percpu.prometheus.Collector(backend=pc.name))
    py_samples, py_types = samples(py_text, prefix)
    assert c_samples[(f"{tree}_http_requests_total", frozenset())] == big
    assert c_samples[(f"{tree}_http_codes_total", frozenset({("index", "2")}))] == 2**33
    assert len(c_samples) == 5
    assert same_samples(c_samples, py_samples) == []
    assert py_types == c_types == {
        f"{tree}_http_requests_total": "counter",
        f"{tree}_http_zero_total": "counter",
        f"{tree}_http_codes_total": "counter",
    }
    assert f"# HELP {tree}_http_requests_total requests \"served\" \\\\ total\n" in py_text
    # Negative control: the comparison sees one changed value.
    objs[2].add(1, 1)
    moved, _ = samples(pc.sysctl.prometheus(), prefix)
    assert same_samples(c_samples, moved) == [
        f"{(f'{tree}_http_codes_total', frozenset({('index', '1')}))}: 0 != 1"]
    # ... and the collector reads the tree at each scrape.
    again, _ = samples(exposition(percpu.prometheus.Collector()), prefix)
    assert same_samples(moved, again) == []


def test_collector_prefix(pc, tree):
    fill(pc, tree)
    prefixed = f"app_{tree}_"
    c_samples, _ = samples(pc.sysctl.prometheus("app_"), prefixed)
    py_samples, _ = samples(exposition(percpu.prometheus.Collector("app_")), prefixed)
    assert len(c_samples) == 5
    assert same_samples(c_samples, py_samples) == []
    with pytest.raises(PercpuError) as info:
        percpu.prometheus.Collector("bad prefix")
    assert info.value.errno == errno.EINVAL
    assert "prometheus.Collector(prefix='bad prefix'): the prefix is not the start " \
        "of a Prometheus metric name" in str(info.value)
    with pytest.raises(PercpuError) as info:
        pc.sysctl.prometheus("9lives_")
    assert info.value.errno == errno.EINVAL
    assert "sysctl.prometheus('9lives_'): the prefix is not" in str(info.value)
    with pytest.raises(TypeError, match=r"prometheus.Collector\(prefix=5\): the prefix must be a str"):
        percpu.prometheus.Collector(5)
    with pytest.raises(TypeError, match=r"sysctl.prometheus\(5\): the prefix must be a str or None"):
        pc.sysctl.prometheus(5)


def promtool_check(text):
    tool = shutil.which("promtool")
    assert tool, "promtool not on PATH (Debian's prometheus; tools/bootstrap.sh installs it)"
    # Not our code: without the sanitizer runtime the asan/tsan legs
    # preload into this interpreter (tests/tools/run_on_path.sh).
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return subprocess.run([tool, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=60, env=env)


def test_promtool_accepts_the_collector_exposition(pc, tree):
    fill(pc, tree)
    text = exposition(percpu.prometheus.Collector())
    assert f"{tree}_http_codes_total" in text
    r = promtool_check(text)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    # Negative control: promtool rejects a counter without _total and a
    # malformed sample line.
    bad = promtool_check("# HELP x_requests bad\n# TYPE x_requests counter\nx_requests 1\n")
    assert bad.returncode != 0
    assert b"_total" in bad.stdout + bad.stderr
    worse = promtool_check("x_total{index=1} 1\n")
    assert worse.returncode != 0


def start_http_server(registry, tries=20):
    """prometheus_client.start_http_server on a free port of 127.0.0.1
    (0.16 does not say which port 0 got: pick one by binding to 0, and
    pick again if another process takes it first); returns the port."""
    import socket
    for _ in range(tries):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            prometheus_client.start_http_server(port, "127.0.0.1", registry)
            return port
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError(f"start_http_server: no free port in {tries} tries")


def test_collector_with_prometheus_client_server(pc, tree):
    import urllib.request
    objs, big = fill(pc, tree)
    registry = prometheus_client.CollectorRegistry()
    registry.register(percpu.prometheus.Collector())
    port = start_http_server(registry)  # a daemon thread, until exit
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    got, _ = samples(text, tree + "_")
    want, _ = samples(pc.sysctl.prometheus(), tree + "_")
    assert got[(f"{tree}_http_requests_total", frozenset())] == big
    assert same_samples(want, got) == []


def test_import_without_prometheus_client():
    # prometheus_client hidden (a None entry in sys.modules): the import
    # fails saying what to install.
    code = ("import sys\n"
            "sys.modules['prometheus_client'] = None\n"
            "try:\n"
            "    import percpu.prometheus\n"
            "except ImportError as e:\n"
            "    print(e)\n"
            "    sys.exit(3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       env=dict(os.environ), timeout=120)
    out = r.stdout.decode()
    assert r.returncode == 3, (out, r.stderr.decode())
    assert "percpu.prometheus" in out and "python3-prometheus-client" in out
    assert "pip install prometheus-client" in out
    # Control: with the module present the same program imports it.
    r = subprocess.run([sys.executable, "-c", code.replace(
        "sys.modules['prometheus_client'] = None\n", "")], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()


# What C registrations give the dump (the C dump's format:
# counter_sysctl_prometheus, as c_target.c serves it): a labelled array
# with a constant label, escaped label values and help, a gauge with a
# negative sum, a labelled gauge, a counter at 2**53 - 1 (Python can now
# register the labels and gauges too: test_labels_and_gauge_from_python).
C_ONLY_DUMP = (
    '# HELP cdump_codes_total replies by class\n'
    '# TYPE cdump_codes_total counter\n'
    'cdump_codes_total{service="api",code="2xx"} 1000\n'
    'cdump_codes_total{service="api",code="a\\"b\\\\c\\nd"} 17\n'
    '# HELP cdump_inflight requests \\\\ in\\nflight\n'
    '# TYPE cdump_inflight gauge\n'
    'cdump_inflight -42\n'
    '# HELP cdump_open open now\n'
    '# TYPE cdump_open gauge\n'
    'cdump_open{zone="eu"} 3\n'
    '# HELP cdump_big_total big\n'
    '# TYPE cdump_big_total counter\n'
    'cdump_big_total 9007199254740991\n'
)


class _FakeSysctl:
    """Stands in for percpu.sysctl: returns a fixed C-format dump."""

    def __init__(self, text):
        self.text = text

    def prometheus(self, prefix=None):
        return self.text


def test_collector_keeps_labels_and_gauges_of_c_leaves():
    col = percpu.prometheus.Collector()
    col._sysctl = _FakeSysctl(C_ONLY_DUMP)
    text = exposition(col)
    want, want_types = samples(C_ONLY_DUMP, "cdump_")
    got, got_types = samples(text, "cdump_")
    assert len(want) == 5
    assert same_samples(want, got) == []
    assert got_types == want_types == {
        "cdump_codes_total": "counter", "cdump_inflight": "gauge",
        "cdump_open": "gauge", "cdump_big_total": "counter"}
    assert "# HELP cdump_inflight requests \\\\ in\\nflight\n" in text
    r = promtool_check(text)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    # Negative control: a changed label value is seen by the comparison.
    col._sysctl = _FakeSysctl(C_ONLY_DUMP.replace('code="2xx"', 'code="3xx"'))
    moved, _ = samples(exposition(col), "cdump_")
    assert len(same_samples(want, moved)) == 2


# ---- labels and gauges registered from Python (issue 16) ----------------

def fill_labelled(pc, tree):
    """A labelled array with a constant label, and a gauge below zero."""
    a = pc.CounterArray(4)
    a.add(0, 1000)
    a.add(3, 2)
    a.register(f"{tree}.http.replies", descr="replies by class",
               labels={"service": "api", "zone": 'e"u\\1\n'},
               element_label="code", element_values=["2xx", "3xx", "4xx", "5xx"])
    g = pc.Counter()
    g.add(-42)
    g.register(f"{tree}.inflight", descr="requests in flight", gauge=True,
               labels={"service": "api"})
    plain = pc.CounterArray(2)
    plain.add(1, 7)
    plain.register(f"{tree}.plain", element_label="shard")
    return a, g, plain


def test_labels_and_gauge_from_python(pc, tree):
    objs = fill_labelled(pc, tree)
    prefix = tree + "_"
    c_text = pc.sysctl.prometheus()
    c_samples, c_types = samples(c_text, prefix)
    py_text = exposition(percpu.prometheus.Collector(backend=pc.name))
    py_samples, py_types = samples(py_text, prefix)
    zone = ("zone", 'e\\"u\\\\1\\n')  # as escaped in the text
    replies = f"{tree}_http_replies_total"
    assert c_samples == {
        (replies, frozenset({("service", "api"), zone, ("code", "2xx")})): 1000,
        (replies, frozenset({("service", "api"), zone, ("code", "3xx")})): 0,
        (replies, frozenset({("service", "api"), zone, ("code", "4xx")})): 0,
        (replies, frozenset({("service", "api"), zone, ("code", "5xx")})): 2,
        (f"{tree}_inflight", frozenset({("service", "api")})): -42,
        (f"{tree}_plain_total", frozenset({("shard", "0")})): 0,
        (f"{tree}_plain_total", frozenset({("shard", "1")})): 7,
    }
    assert same_samples(c_samples, py_samples) == []
    assert py_types == c_types == {replies: "counter", f"{tree}_inflight": "gauge",
                                   f"{tree}_plain_total": "counter"}
    # Read by name, the gauge is the two's complement of its sum.
    assert pc.sysctl.read(f"{tree}.inflight") == 2**64 - 42
    r = promtool_check(py_text)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    # Negative control: the comparison sees a moved gauge.
    objs[1].add(-1)
    moved, _ = samples(pc.sysctl.prometheus(), prefix)
    assert same_samples(c_samples, moved) == [
        f"{(f'{tree}_inflight', frozenset({('service', 'api')}))}: -42 != -43"]


def _refused(pc, what, register, err, reason):
    with pytest.raises(PercpuError) as info:
        register()
    assert info.value.errno == err, what
    msg = str(info.value)
    assert msg.startswith(f"[Errno {err}] {what}.register: counter_sysctl: "), msg
    assert reason in msg, msg
    assert "(percpu." in msg, msg  # the object is named


def test_labels_refused_with_the_c_reason(pc, tree):
    a = pc.CounterArray(2)
    c = pc.Counter()
    ca = "CounterArray"
    _refused(pc, ca, lambda: a.register(f"{tree}.a", labels={"__x": "1"}),
             errno.EINVAL, f"{tree}.a: label name '__x' starts with '__'")
    _refused(pc, ca, lambda: a.register(f"{tree}.a", labels={"bad-name": "1"}),
             errno.EINVAL, "label name 'bad-name' is not")
    _refused(pc, ca, lambda: a.register(f"{tree}.a", labels={"le": "1"}),
             errno.EINVAL, "reserved for histograms")
    _refused(pc, ca, lambda: a.register(f"{tree}.a", labels={"k": ""}),
             errno.EINVAL, "label k has an empty value")
    _refused(pc, ca, lambda: a.register(f"{tree}.a", element_label="k",
                                        element_values=["x", "x"]),
             errno.EINVAL, f'{tree}.a: elements 0 and 1 both have k="x"')
    _refused(pc, ca, lambda: a.register(f"{tree}.a", labels={"code": "1"},
                                        element_label="code"),
             errno.EINVAL, "label code is both constant and the element label")
    _refused(pc, "Counter", lambda: c.register(f"{tree}.g_total", gauge=True),
             errno.EINVAL, f"{tree}.g_total: a gauge's name must not end in _total")
    # Nothing was registered by the refusals; then a good one, and a
    # taken name refused with the C reason too.
    assert pc.sysctl.names(tree) == []
    a.register(f"{tree}.a", labels={"k": "v"}, element_values=["x", "y"])
    _refused(pc, "Counter", lambda: c.register(f"{tree}.a"), errno.EEXIST,
             f"{tree}.a: the name is taken")
    # Control: the same gauge without _total is accepted.
    c.register(f"{tree}.g", gauge=True)
    assert pc.sysctl.names(tree) == [f"{tree}.a", f"{tree}.g"]


def test_label_arguments_checked_before_c(pc, tree):
    a = pc.CounterArray(3)
    c = pc.Counter()
    with pytest.raises(ValueError, match=r"^CounterArray\.register: 2 element_values "
                       r"for 3 elements \(percpu\.CounterArray"):
        a.register(f"{tree}.a", element_label="code", element_values=["a", "b"])
    with pytest.raises(TypeError, match=r"^CounterArray\.register: element_values must "
                       r"be a sequence of str"):
        a.register(f"{tree}.a", element_values="abc")
    with pytest.raises(TypeError, match=r"element_values\[1\] must be a str, not int"):
        a.register(f"{tree}.a", element_values=["a", 1, "c"])
    with pytest.raises(TypeError, match=r"^Counter\.register: labels must be a dict"):
        c.register(f"{tree}.c", labels=[("k", "v")])
    with pytest.raises(TypeError, match=r"the value of label 'k' must be a str, not int"):
        c.register(f"{tree}.c", labels={"k": 1})
    with pytest.raises(ValueError, match=r"contains a NUL character"):
        c.register(f"{tree}.c", labels={"k": "a\0b"})
    with pytest.raises(ValueError, match=r"not valid UTF-8"):
        c.register(f"{tree}.c", labels={"k": "\udc80"})
    with pytest.raises(TypeError):
        c.register(f"{tree}.c", element_label="code")  # a scalar has none
    assert pc.sysctl.names(tree) == []
    # Control: the same arguments, right, are accepted.
    a.register(f"{tree}.a", element_label="code", element_values=("a", "b", "c"))
    c.register(f"{tree}.c", labels={"k": "a b"})
    assert pc.sysctl.names(tree) == [f"{tree}.a", f"{tree}.c"]
