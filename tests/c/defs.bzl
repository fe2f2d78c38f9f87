# SPDX-License-Identifier: MIT
"""percpu_c_test: one C test binary, run once per library path.

Each test binary is built with -DPERCPU_TEST_INJECT (delay injection inside
critical sections) and links the library's test build with its hooks,
//core:percpu_testing (through //tests/c:harness; never //core:percpu as
well), and is run three times:
  <name>_rseq       glibc's rseq registration, the fast path
  <name>_tunable    GLIBC_TUNABLES=glibc.pthread.rseq=0, the fallback path
  <name>_seccomp    rseq and membarrier denied by seccomp before exec
and, where asked for, <name>_nosysfs: the rseq path with the possible-CPU
list unreadable (PERCPU_TEST_NO_SYSFS=1), so 4096 CPUs are provided for.

Every binary is also run under valgrind (unless valgrind = False):
  <name>_valgrind   valgrind --error-exitcode=99 --leak-check=full: any
                    memory error or leak fails the test; valgrind has no
                    rseq (ENOSYS), so the fallback path must be taken
                    automatically, and the harness checks that it was.
                    Tagged "valgrind": tools/run_tests.sh runs these in
                    their own leg (--test_tag_filters=valgrind) and keeps
                    them out of the others (-valgrind).  Not built under
                    the sanitizer configs (valgrind cannot run their
                    runtimes).
valgrind_suppressions: a suppression file for the valgrind run, for what
only valgrind's view of a process makes an error (fork_test: a fork
child's leak check sees the parent's other threads' blocks, unreachable
once those threads are gone).  Each entry must say why.
valgrind_scale: PERCPU_TEST_SCALE for the valgrind run only (the harness's
iteration scale: loop counts, never checks), for tests whose rounds each
wait for every thread to be scheduled -- valgrind runs one at a time.

tests/tools/run_on_path.sh sets the expectations the harness verifies.
"""

load("//:copts.bzl", "TEST_COPTS")

PATHS = ["rseq", "tunable", "seccomp"]

# What valgrind cannot run: binaries built with a sanitizer runtime.
_NOT_UNDER_SANITIZERS = select({
    "//tools:asan": ["@platforms//:incompatible"],
    "//tools:tsan": ["@platforms//:incompatible"],
    "//tools:ubsan": ["@platforms//:incompatible"],
    "//conditions:default": [],
})

def percpu_c_test(
        name,
        srcs,
        deps = [],
        size = "medium",
        tags = [],
        paths = PATHS,
        valgrind = True,
        valgrind_suppressions = None,
        valgrind_scale = None):
    native.cc_binary(
        name = name + "_bin",
        srcs = srcs,
        copts = TEST_COPTS,
        deps = deps + ["//tests/c:harness"],
        testonly = True,
    )
    runs = [(path, size, tags, None) for path in paths]
    supp = [valgrind_suppressions] if valgrind_suppressions else []
    if valgrind:
        # Serialised threads and ~30x slower code: one size up.
        bigger = {"small": "medium", "medium": "large"}.get(size, size)
        runs.append(("valgrind", bigger, tags + ["valgrind"], _NOT_UNDER_SANITIZERS))
    for path, test_size, test_tags, compat in runs:
        kwargs = {}
        data = []
        if compat != None:
            kwargs["target_compatible_with"] = compat
        env = {}
        if path == "valgrind" and supp:
            data = supp
            env["PERCPU_VALGRIND_SUPPRESSIONS"] = "$(location %s)" % supp[0]
        if path == "valgrind" and valgrind_scale:
            env["PERCPU_TEST_SCALE"] = valgrind_scale
        if env:
            kwargs["env"] = env
        native.sh_test(
            name = name + "_" + path,
            srcs = ["//tests/tools:run_on_path.sh"],
            args = [
                path,
                "$(location //tests/tools:seccomp_exec)",
                "$(location :%s_bin)" % name,
            ],
            data = [
                ":" + name + "_bin",
                "//tests/tools:seccomp_exec",
            ] + data,
            size = test_size,
            tags = test_tags,
            **kwargs
        )
