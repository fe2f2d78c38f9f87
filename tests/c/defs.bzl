"""percpu_c_test: one C test binary, run once per library path.

Each test binary is built with -DPERCPU_TEST_INJECT (delay injection inside
critical sections) and run three times:
  <name>_rseq       glibc's rseq registration, the fast path
  <name>_tunable    GLIBC_TUNABLES=glibc.pthread.rseq=0, the fallback path
  <name>_seccomp    rseq and membarrier denied by seccomp before exec
and, where asked for, <name>_nosysfs: the rseq path with the possible-CPU
list unreadable (PERCPU_TEST_NO_SYSFS=1), so 4096 CPUs are provided for.
run_on_path.sh sets the expectations the harness verifies.
"""

PATHS = ["rseq", "tunable", "seccomp"]

def percpu_c_test(name, srcs, deps = [], size = "medium", tags = [], paths = PATHS):
    native.cc_binary(
        name = name + "_bin",
        srcs = srcs,
        copts = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-DPERCPU_TEST_INJECT"],
        deps = deps + ["//tests/c:harness"],
        testonly = True,
    )
    for path in paths:
        native.sh_test(
            name = name + "_" + path,
            srcs = ["//tests/c:run_on_path.sh"],
            args = [
                path,
                "$(location :%s_bin)" % name,
                "$(location //tests/tools:seccomp_exec)",
            ],
            data = [
                ":" + name + "_bin",
                "//tests/tools:seccomp_exec",
            ],
            size = size,
            tags = tags,
        )
