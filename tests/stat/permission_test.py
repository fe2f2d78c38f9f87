# SPDX-License-Identifier: MIT
"""Another user cannot read a process's counters (issue 17): with the C
service (stat_service.c) publishing as root, `percpu-stat -1 PID` run as
nobody (setpriv --reuid=nobody --regid=nogroup --clear-groups) must fail
with one line naming the pid and saying permission is denied, and exit
status 4; the positive control is the very same binary and command run
as the owner, which must print the exact values.  `-l` as nobody exits
0 without the service's pid; as root it lists it.

The binary is copied to a fresh 0755 directory under /tmp (nobody
cannot reach Bazel's output tree under /root).  Not in the sandbox
(tag no-sandbox): in its user namespace only root is mapped.  Skipped,
with a message saying why, when not running as root or when nobody
cannot be switched to here.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import statlib
from statlib import Failure, fail

THREADS, ITERS = 2, 5000
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def skip(why):
    print(f"permission_test: SKIP: {why}")
    sys.exit(0)


def main():
    if os.geteuid() != 0:
        skip("not running as root: cannot run percpu-stat as another user")
    if not shutil.which("setpriv"):
        skip("no setpriv (util-linux) to switch to nobody")
    r = subprocess.run(AS_NOBODY + ["true"], capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot switch to nobody here ({r.stderr.strip()}): a user namespace "
             "without that uid?")
    shared = tempfile.mkdtemp(prefix="percpu_stat_nobody.", dir="/tmp")
    svc = None
    try:
        binary = os.path.join(shared, "percpu-stat")
        shutil.copy(statlib.percpu_stat(), binary)
        os.chmod(shared, 0o755)
        os.chmod(binary, 0o755)
        svc = statlib.c_service("values", THREADS, ITERS)
        once = statlib.once_expected(statlib.c_leaves(THREADS, ITERS))
        statlib.wait_for_once(svc.pid, once)
        # Positive control: the copy, as the owner.
        r = subprocess.run([binary, "-1", str(svc.pid)], capture_output=True, text=True,
                           timeout=statlib.DEADLINE_S)
        if r.returncode != 0:
            fail(f"the owner's run of the copy failed: exit {r.returncode}: {r.stderr}")
        bad = statlib.once_mismatches(once, statlib.parse_once(r.stdout))
        if bad:
            fail("the owner's run of the copy:\n  " + "\n  ".join(bad))
        print(f"as root (the owner): -1 {svc.pid} exact")
        for args in (["-1"], ["--json"], ["--prometheus"]):
            r = subprocess.run(AS_NOBODY + [binary, *args, str(svc.pid)], capture_output=True,
                               text=True, timeout=statlib.DEADLINE_S)
            bad = statlib.error_problems(r, svc.pid, ["permission"], statlib.EXIT_PERMISSION)
            if bad:
                fail(f"as nobody: percpu-stat {args[0]} {svc.pid}:\n  " + "\n  ".join(bad))
            print(f"as nobody: {args[0]} {svc.pid}: exit {r.returncode}: {r.stderr.strip()}")
        # -l skips another user's process (docs/percpu-stat.md); the owner's lists it.
        listings = {}
        for who, prefix in (("root", []), ("nobody", AS_NOBODY)):
            r = subprocess.run(prefix + [binary, "-l"], capture_output=True, text=True,
                               timeout=statlib.DEADLINE_S)
            if r.returncode != 0:
                fail(f"as {who}: percpu-stat -l: exit {r.returncode}: {r.stderr.strip()}")
            listings[who] = {int(line.split()[0]) for line in r.stdout.splitlines()[1:]
                             if line.split() and line.split()[0].isdigit()}
        if svc.pid not in listings["root"] or svc.pid in listings["nobody"]:
            fail(f"-l: pid {svc.pid} listed as root: {svc.pid in listings['root']}, "
                 f"as nobody: {svc.pid in listings['nobody']} (expected yes, no)")
        print(f"-l: pid {svc.pid} listed for root, not for nobody (both exit 0)")
        statlib.check_clean_exit(svc)
    except (Failure, subprocess.TimeoutExpired) as e:
        sys.exit(f"permission_test: FAIL: {e}")
    finally:
        if svc and svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()
        shutil.rmtree(shared, ignore_errors=True)
    print("permission_test: ok")


if __name__ == "__main__":
    main()
