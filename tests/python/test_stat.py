# SPDX-License-Identifier: MIT
"""Publication of the sysctl tree to other processes (issue 17).

Publication is process-wide and permanent, so each case runs in a child
interpreter (the same interpreter and environment as this suite, so the
same backend modules and the same path); the child reports what it saw
as JSON on stdout.  The segment is found the way percpu-stat finds it:
the descriptor of the child whose link is "/memfd:percpu-stat (deleted)".
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SEGMENT_LINK = "/memfd:percpu-stat (deleted)"


def run_child(backend, body, env=None):
    """Run `body` (Python source using `pc`, the backend) in a child; its
    last stdout line is JSON, returned decoded."""
    source = textwrap.dedent("""
        import json, os, sys
        import percpu
        pc = percpu.get_backend(sys.argv[1])
        LINK = %r

        def segment_fds():
            fds = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink("/proc/self/fd/" + fd) == LINK:
                        fds.append(int(fd))
                except OSError:
                    pass
            return fds
    """ % SEGMENT_LINK) + textwrap.dedent(body)
    child_env = dict(os.environ)
    child_env.pop("PERCPU_PUBLISH", None)
    child_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", source, backend], env=child_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"child failed ({proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ("swig", "cffi"))
def test_publish_makes_a_segment_and_is_idempotent(backend):
    seen = run_child(backend, """
        before = (pc.sysctl.published(), segment_fds())
        c = pc.Counter()
        c.register("py.pub.hits", descr="hits")
        pc.sysctl.publish()
        pc.sysctl.publish()
        print(json.dumps({"before": before, "after": pc.sysctl.published(),
                          "fds": len(segment_fds())}))
    """)
    assert seen["before"] == [False, []]
    assert seen["after"] is True
    assert seen["fds"] == 1


@pytest.mark.parametrize("backend", ("swig", "cffi"))
def test_the_environment_publishes_at_load(backend):
    seen = run_child(backend, """
        print(json.dumps({"published": pc.sysctl.published(),
                          "fds": len(segment_fds())}))
    """, env={"PERCPU_PUBLISH": "1"})
    assert seen == {"published": True, "fds": 1}


def test_a_bad_environment_value_is_refused_with_a_message():
    proc = subprocess.run(
        [sys.executable, "-c", "import percpu; print(percpu.sysctl.published())"],
        env=dict(os.environ, PERCPU_PUBLISH="yes"), capture_output=True, text=True,
        timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "False"
    assert "PERCPU_PUBLISH=yes: expected 1 or 0; not publishing" in proc.stderr


PUBLISHER = textwrap.dedent("""
    import sys
    import percpu
    hits = percpu.Counter()
    hits.register("py.stat.hits", descr="hits")
    codes = percpu.CounterArray(3)
    codes.register("py.stat.codes")
    level = percpu.Counter()
    level.register("py.stat.level", gauge=True)
    hits.add(41)
    codes.add(1, 5)
    level.add(-3)
    print("ready", flush=True)
    sys.stdin.read()
""")


@pytest.fixture(scope="module")
def publisher():
    """A child that publishes (PERCPU_PUBLISH=1) and waits for stdin to close."""
    env = dict(os.environ, PERCPU_PUBLISH="1")
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.mark.parametrize("backend", ("swig", "cffi"))
def test_read_gives_another_process_counters_exactly(backend, publisher):
    import percpu
    stat = percpu.get_backend(backend).stat
    values = stat.read(publisher.pid)
    assert values["py.stat.hits"] == 41
    assert values["py.stat.codes"] == [0, 5, 0]
    assert values["py.stat.level"] == -3
    snap = stat.snapshot(publisher.pid)
    assert snap["pid"] == publisher.pid
    hits = [c for c in snap["counters"] if c["name"] == "py.stat.hits"]
    assert hits == [{"name": "py.stat.hits", "metric": "py_stat_hits_total",
                     "kind": "counter", "help": "hits", "labels": {}, "value": 41}]


@pytest.mark.parametrize("backend", ("swig", "cffi"))
def test_read_errors_name_the_pid_and_the_reason(backend):
    import percpu
    stat = percpu.get_backend(backend).stat
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(percpu.PercpuError) as e:
            stat.read(sleeper.pid)
        assert f"stat.snapshot({sleeper.pid})" in str(e.value)
        assert "publishes no counters" in str(e.value)
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.raises(ProcessLookupError) as e:
        stat.read(sleeper.pid)  # reaped: gone
    assert str(sleeper.pid) in str(e.value)
    with pytest.raises(TypeError):
        stat.read("1")
    with pytest.raises(ValueError):
        stat.read(0)
