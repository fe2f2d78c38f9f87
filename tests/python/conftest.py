# SPDX-License-Identifier: MIT
"""Fixtures for the percpu Python suite.

Every test that takes `pc` runs once per backend: `pc` is the
percpu.Backend namespace (pc.Counter, pc.sysctl, pc.topology, ...).
`expect` says which path the runner promised (tests/python/run_suite.sh):
PERCPU_EXPECT_PATH=rseq|fallback, PERCPU_EXPECT_FENCE=auto|no.
"""

import gc
import os
import threading
import time

import pytest

import percpu

BACKENDS = ("swig", "cffi")


@pytest.fixture(params=BACKENDS)
def pc(request):
    return percpu.get_backend(request.param)


@pytest.fixture
def expect():
    return {
        "path": os.environ.get("PERCPU_EXPECT_PATH"),
        "fence": os.environ.get("PERCPU_EXPECT_FENCE", "auto"),
    }


def wait_for(cond, timeout=10.0):
    """Poll cond() until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.002)


def settle(driver, baseline, timeout=10.0):
    """Wait until the backend's live C objects are back to `baseline`
    (percpu_ref frees asynchronously, on the library's worker)."""
    gc.collect()
    return wait_for(lambda: driver.live_objects() == baseline, timeout)


class Recorder:
    """A callback recording each call and the thread it came from."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []

    def __call__(self):
        with self.lock:
            self.calls.append(threading.get_ident())

    @property
    def count(self):
        with self.lock:
            return len(self.calls)


@pytest.fixture
def recorder():
    return Recorder


@pytest.fixture(autouse=True)
def quiet_start():
    """Let C objects of earlier tests finish dying (percpu_ref frees on
    the library's worker) so each test's leak baseline is its own."""
    gc.collect()
    drivers = [percpu.get_backend(b).driver for b in BACKENDS]
    wait_for(lambda: all(d.live_objects() == 0 for d in drivers), 2.0)
    yield
