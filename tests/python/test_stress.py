# SPDX-License-Identifier: MIT
"""The stress scenarios (percpu.stress), small, on both backends and
both variants: C loops with the GIL released on pinned threads, and
Python threads driving the primitives call by call."""

import os

import pytest

from percpu import stress

SCENARIOS = [s for s in stress.SCENARIOS if s != "gil_released"]


@pytest.mark.parametrize("variant", ["c", "python"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(pc, scenario, variant):
    iters = 300_000 if variant == "c" else 3_000
    res = stress.run(scenario, pc.name, iters=iters, variant=variant,
                     threads=max(4, len(os.sched_getaffinity(0))), timeout=120)
    assert res.ok, f"{scenario}/{variant}: {res.detail}"


def test_c_loops_really_run_in_parallel(pc):
    """The C loops run with the GIL released: two threads meet inside C
    (deterministic: no overlap needs to happen by chance, and one CPU is
    enough); a lone caller must time out (the check can fail)."""
    res = stress.run("gil_released", pc.name, threads=2, timeout=60)
    assert res.ok, res.detail


def test_cli_list(capsys):
    assert stress.main(["--list"]) == 0
    assert "ref_release_once" in capsys.readouterr().out


def test_cli_run(capsys):
    rc = stress.main(["--iters", "20000", "--variant", "c",
                      "--scenario", "counter_sum", "--scenario", "ref_release_once"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "all invariants held" in out


def test_test_support_is_not_product_api():
    """percpu.stress and percpu.bench ship in the package as test support
    (docs/python.md): not exported, not imported by `import percpu`, and
    each says so in its docstring."""
    import subprocess
    import sys

    import percpu
    from percpu import bench

    for name in ("stress", "bench"):
        assert name not in percpu.__all__
    for mod in (stress, bench):
        assert "TEST SUPPORT, not product API" in mod.__doc__
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, percpu; print(sorted(m for m in sys.modules "
         "if m in ('percpu.stress', 'percpu.bench')))"],
        check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]", out
