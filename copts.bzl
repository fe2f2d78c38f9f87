# SPDX-License-Identifier: MIT
"""The C compiler flags, written once.

Every BUILD file loads its copts from here: load("//:copts.bzl", ...).
setup.py and the fuzz scripts' clang build (tests/fuzz/fuzz_common.sh),
which cannot load a .bzl file, read this file through tools/copts.py, so
this file must stay plain list assignments (a list of strings, or names
and lists joined with +): that script and //tests/lint:copts_test reject
anything else, and the test fails if a BUILD file, setup.py or a fuzz
script spells the flags itself.

Differences that are deliberate are the named variants below, each with
its reason.
"""

# The language and the warnings every C file of the project is built with.
C_STD = ["-std=gnu11"]
WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]

# The library, the NUMA leaf, the shim, the test tools, the benchmarks.
PERCPU_COPTS = C_STD + WARNINGS

# libpercpu itself: its exports are decided by the version script
# (core/libpercpu.map), so no toolchain default may hide them.
LIB_COPTS = PERCPU_COPTS + ["-fvisibility=default"]

# Test binaries: the library's headers add delay injection inside critical
# sections (percpu_test_inject_*) when built with this define.
TEST_COPTS = PERCPU_COPTS + ["-DPERCPU_TEST_INJECT"]

# Generated binding code (SWIG's and cffi's C): their warnings are not
# ours to fix, so no -Werror, and the aliasing CPython's API assumes.
WRAP_COPTS = C_STD + [
    "-fno-strict-aliasing",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
    "-Wno-cast-function-type",
]

# The benchmarks time code: optimised even in a fastbuild (bazel run
# //benchmarks:scaling without -c opt would otherwise measure -O0).
BENCH_COPTS = PERCPU_COPTS + ["-O2"]

# setup.py (pip install): built on the user's machine by whatever compiler
# it has, so no -Werror (a newer compiler's new warning must not break an
# install); optimised as a release build; -fno-strict-aliasing as CPython
# builds its extensions.
PIP_COPTS = C_STD + [
    "-O2",
    "-fno-strict-aliasing",
]

# tests/fuzz/run_fuzz.sh and cli/percpu-stat/fuzz/run_segment_fuzz.sh
# (clang, outside Bazel, through tests/fuzz/fuzz_common.sh; the sanitizers
# are added there): the project's flags, with debug info and -O1 for ASan's traces.
FUZZ_COPTS = PERCPU_COPTS + [
    "-g",
    "-O1",
]

# What a strict C user compiles against the installed headers
# (//tests/dist:dist_test): ISO C11, no GNU extensions, pedantic.
STRICT_C11_COPTS = [
    "-std=c11",
    "-pedantic",
] + WARNINGS
