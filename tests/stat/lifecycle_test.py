# SPDX-License-Identifier: MIT
"""A segment's life (issue 17), read with percpu-stat:

  - fork: the C service in fork mode (stat_service.c) forks after its
    threads added; the child adds to four counters and registers a leaf
    of its own.  `-1 CHILD` shows the child's values (not the parent's),
    `-1 PARENT` the parent's (without the child's leaf), and `-l` lists
    both, each with its command and as many counters as -1 prints.
    The child's two leaves that reach the segment only through the
    library's watcher thread (statlib.C_MIRRORED: a counter made before
    publication, a static leaf's late handle) are exact too: the child
    starts a watcher of its own -- except in a TSan build, which forbids
    a forked child of a threaded process new threads (die_after_fork):
    there only their names are checked;
  - exit: once the service has exited, `-1 PID` of the parent and of the
    child fail cleanly (exit 3, nothing on stdout, one line naming the
    pid) and `-l` lists neither;
  - a process that does not publish -- the C service in private mode
    (the library loaded, counters registered, never published) and a
    `sleep` -- gives one line naming the pid and saying it publishes
    nothing, and exit 5.

Runs in every leg (a plain Python driver of C binaries).  Negative
control: the error checker reports an exit 0, a message on two lines,
one not naming the pid, a missing word, output on stdout.
"""

import subprocess
import sys

import statlib
from statlib import Failure, fail

THREADS, ITERS = 3, 3000


def check_the_checker():
    ok = subprocess.CompletedProcess([], 3, "", "percpu-stat: pid 12: no such process\n")
    assert statlib.error_problems(ok, 12, ["no such"]) == []
    assert len(statlib.error_problems(ok, 123, [])) == 1  # another pid
    assert len(statlib.error_problems(ok, 12, ["publish"])) == 1
    assert statlib.error_problems(ok, 12, [], 5) == ["exit status 3, expected 5"]
    zero = subprocess.CompletedProcess([], 0, "", ok.stderr)
    assert statlib.error_problems(zero, 12) == ["exit status 0, expected a failure"]
    two = subprocess.CompletedProcess([], 3, "", ok.stderr * 2)
    assert len(statlib.error_problems(two, 12)) == 1
    out = subprocess.CompletedProcess([], 3, "x 1\n", ok.stderr)
    assert len(statlib.error_problems(out, 12)) == 1
    crash = subprocess.CompletedProcess([], -11, "", ok.stderr)
    assert len(statlib.error_problems(crash, 12)) == 1


def listed():
    """{pid: (command, counters)} from `percpu-stat -l`."""
    lines = statlib.stat_ok("-l").splitlines()
    if not lines or lines[0].split() != ["PID", "COMMAND", "COUNTERS"]:
        fail(f"-l: unexpected header: {lines[:1]}")
    out = {}
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit() or not fields[-1].isdigit():
            fail(f"-l: malformed line {line!r}")
        out[int(fields[0])] = (" ".join(fields[1:-1]), int(fields[-1]))
    return out


def expect_error(args, pid, words, status, what):
    r = statlib.stat(*args)
    bad = statlib.error_problems(r, pid, words, status)
    if bad:
        fail(f"{what}: percpu-stat {' '.join(map(str, args))}:\n  " + "\n  ".join(bad))
    print(f"{what}: exit {r.returncode}: {r.stderr.strip()}")


def built_with_tsan():
    r = subprocess.run(["readelf", "-d", statlib.runfile("tests/stat/stat_service")],
                       capture_output=True, text=True, check=True)
    return "libtsan" in r.stdout


def fork_and_exit(mirrored_in_child):
    svc = statlib.c_service("fork", THREADS, ITERS)
    try:
        parent, child = svc.said.get("parent"), svc.said.get("child")
        if parent != svc.pid or not child or child == parent:
            fail(f"fork mode said parent {parent} child {child}; the service is {svc.pid}")
        child_once = statlib.once_expected(statlib.c_child_leaves(THREADS, ITERS))
        parent_once = statlib.once_expected(statlib.c_leaves(THREADS, ITERS))
        statlib.wait_for_once(parent, parent_once)
        if mirrored_in_child:
            statlib.wait_for_once(child, child_once)
        else:
            direct = {k: v for k, v in child_once.items() if k not in statlib.C_MIRRORED}
            got = statlib.wait_for_once(child, direct, ignore=statlib.C_MIRRORED)
            if set(got) != set(child_once):
                fail(f"-1 {child} (child): names {sorted(got)}, expected {sorted(child_once)}")
        print(f"fork: -1 {child} (child) and -1 {parent} (parent) each exact, "
              "the child's own values and leaf" +
              ("" if mirrored_in_child else
               f" (in the child, not the values of {', '.join(statlib.C_MIRRORED)})"))
        procs = listed()
        for pid, once in ((parent, parent_once), (child, child_once)):
            if pid not in procs:
                fail(f"-l does not list pid {pid}: {procs}")
            if procs[pid] != ("stat_service", len(once)):
                fail(f"-l: pid {pid}: {procs[pid]}, expected ('stat_service', {len(once)})")
        print(f"fork: -l lists both: {procs[parent]}, {procs[child]}")
        statlib.check_clean_exit(svc)
    finally:
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()
    # The child is gone too: the parent exits only after waiting for it.
    for pid, who in ((parent, "parent"), (child, "child")):
        expect_error(["-1", pid], pid, [], statlib.EXIT_NO_PROCESS, f"exited {who}")
    procs = listed()
    if parent in procs or child in procs:
        fail(f"-l still lists an exited process: {procs}")


def not_publishing():
    svc = statlib.c_service("private", THREADS, ITERS)
    try:
        expect_error(["-1", svc.pid], svc.pid, ["publish"],
                     statlib.EXIT_NOT_PUBLISHING, "private (never published)")
        expect_error(["--json", svc.pid], svc.pid, ["publish"],
                     statlib.EXIT_NOT_PUBLISHING, "private, --json")
        if svc.pid in listed():
            fail(f"-l lists pid {svc.pid}, which never published")
        statlib.check_clean_exit(svc)
    finally:
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()
    sleep = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL)
    try:
        expect_error(["-1", sleep.pid], sleep.pid, ["publish"],
                     statlib.EXIT_NOT_PUBLISHING, "sleep")
        expect_error(["--prometheus", sleep.pid], sleep.pid, ["publish"],
                     statlib.EXIT_NOT_PUBLISHING, "sleep, --prometheus")
    finally:
        sleep.kill()
        sleep.wait()


def main():
    if sys.argv[1:]:
        sys.exit("usage: lifecycle_test.py")
    mirrored_in_child = not built_with_tsan()
    check_the_checker()
    try:
        fork_and_exit(mirrored_in_child)
        not_publishing()
    except Failure as e:
        sys.exit(f"lifecycle_test: FAIL: {e}")
    print("lifecycle_test: ok")


if __name__ == "__main__":
    main()
