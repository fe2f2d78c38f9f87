# SPDX-License-Identifier: MIT
"""The C flags are written once, in copts.bzl.  Fails if:

  - copts.bzl is not plain list assignments (tools/copts.py, which
    setup.py and the fuzz scripts read it through, must see what Bazel
    sees), or
    a list the project relies on is missing or has drifted in shape;
  - a tracked BUILD or .bzl file, setup.py or a fuzz script (FUZZ_SCRIPTS)
    spells a compiler flag itself (-std=, -W..., -O.., -D...,
    -fno-strict-aliasing) instead of taking a list from copts.bzl;
  - setup.py or tests/fuzz/fuzz_common.sh (the clang build both fuzz
    scripts source) no longer read their list (PIP_COPTS, FUZZ_COPTS)
    from copts.bzl.

Not scanned: tests/external/BUILD.consumer (another workspace: a user's
own flags) and the user's command lines in tests/dist/dist_test.sh.  The
source tree is found through the runfiles' symlink to copts.bzl and listed
with git, so a new BUILD file is checked without being listed here.
Negative controls run first, in-test: drifted copies must be caught.
"""

import importlib.util
import os
import re
import subprocess
import sys

# A compiler flag in a quoted string (BUILD, .bzl, setup.py).
QUOTED_FLAG = re.compile(
    r"""["'](-std=|-W(?!l,)|-O[0-3sgz]?["']|-D[A-Z_]|-fno-strict-aliasing)""")
# A compiler flag as a word of a shell command (the fuzz scripts).
SHELL_FLAG = re.compile(
    r"""(?<![\w$/-])(-std=\S+|-W(?!l,)[a-z][\w=-]*|-O[0-3sgz]?(?=\s|$)|-DPERCPU_\w+|-fno-strict-aliasing)""")

EXPECTED = {
    # name: (must start with this list's flags, then exactly these)
    "TEST_COPTS": ("PERCPU_COPTS", ["-DPERCPU_TEST_INJECT"]),
    "LIB_COPTS": ("PERCPU_COPTS", ["-fvisibility=default"]),
    "BENCH_COPTS": ("PERCPU_COPTS", ["-O2"]),
    "FUZZ_COPTS": ("PERCPU_COPTS", ["-g", "-O1"]),
}
REQUIRED = ["PERCPU_COPTS", "TEST_COPTS", "WRAP_COPTS", "LIB_COPTS",
            "BENCH_COPTS", "PIP_COPTS", "FUZZ_COPTS", "STRICT_C11_COPTS"]
NOT_SCANNED = {"copts.bzl", "tests/external/BUILD.consumer"}
# The clang builds outside Bazel: the two scripts and the helper they
# source, which reads FUZZ_COPTS for both (FUZZ_COPTS_READER).
FUZZ_COPTS_READER = "tests/fuzz/fuzz_common.sh"
FUZZ_SCRIPTS = ("tests/fuzz/run_fuzz.sh", FUZZ_COPTS_READER,
                "cli/percpu-stat/fuzz/run_segment_fuzz.sh")


def load_copts_module(root):
    spec = importlib.util.spec_from_file_location(
        "copts", os.path.join(root, "tools", "copts.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def list_errors(lists):
    errors = [f"copts.bzl: no {n}" for n in REQUIRED if n not in lists]
    for name, (base, extra) in EXPECTED.items():
        if name in lists and base in lists and lists[name] != lists[base] + extra:
            errors.append(f"copts.bzl: {name} = {lists[name]}, expected "
                          f"{base} + {extra}")
    pc = lists.get("PERCPU_COPTS", [])
    for flag in ("-std=gnu11", "-Wall", "-Wextra", "-Werror"):
        if flag not in pc:
            errors.append(f"copts.bzl: PERCPU_COPTS lacks {flag}")
    if "-Werror" in lists.get("PIP_COPTS", []):
        errors.append("copts.bzl: PIP_COPTS has -Werror (a user's newer "
                      "compiler must not break pip install)")
    return errors


def spelled_flags(rel, text):
    """Lines of text (file rel) that spell a compiler flag themselves."""
    pattern = SHELL_FLAG if rel.endswith(".sh") else QUOTED_FLAG
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0] if not rel.endswith(".py") else line
        if rel.endswith(".py") and line.lstrip().startswith("#"):
            continue
        m = pattern.search(code)
        if m:
            out.append(f"{rel}:{n}: spells {m.group(1).strip(chr(34) + chr(39))} "
                       "itself; take a list from copts.bzl")
    return out


def reader_errors(setup_py, fuzz_reader):
    errors = []
    if not re.search(r'_copts\("PIP_COPTS"\)', setup_py):
        errors.append("setup.py does not read PIP_COPTS from copts.bzl")
    if not re.search(r"tools/copts\.py\"? FUZZ_COPTS", fuzz_reader):
        errors.append(f"{FUZZ_COPTS_READER} does not read FUZZ_COPTS "
                      "through tools/copts.py")
    return errors


def negative_controls(copts):
    """Drifted copies the checks must catch; returns what they missed."""
    missed = []
    if not spelled_flags("x/BUILD", 'cc_library(copts = ["-std=gnu11", "-Wall"])'):
        missed.append("a BUILD file with its own copts")
    if not spelled_flags("setup.py", 'CFLAGS = ["-std=gnu11", "-O2"]'):
        missed.append("setup.py with its own CFLAGS")
    if not spelled_flags(FUZZ_COPTS_READER, '"$cc" -std=gnu11 -g -O1 -Wall \\'):
        missed.append("a fuzz script with its own flags")
    if spelled_flags("x/BUILD", 'linkopts = ["-Wl,-z,nodelete", "-lnuma"]'):
        missed.append("(false alarm) linker flags taken for compiler flags")
    if not reader_errors("CFLAGS = []", "clang -c x.c"):
        missed.append("readers that stopped reading copts.bzl")
    bad = dict(TEST_COPTS=["-std=gnu11", "-DPERCPU_TEST_INJECT"],
               PERCPU_COPTS=["-std=gnu11", "-Wall", "-Wextra", "-Werror"])
    if not list_errors(bad):
        missed.append("a TEST_COPTS that dropped PERCPU_COPTS' warnings")
    try:
        copts.parse('X = select({"//c": ["-O2"]})\n')
        missed.append("a copts.bzl that is not plain lists")
    except ValueError:
        pass
    return missed


def main():
    root = os.path.dirname(os.path.realpath("copts.bzl"))
    copts = load_copts_module(root)
    errors = [f"negative control missed: {m}" for m in negative_controls(copts)]
    try:
        lists = copts.load(os.path.join(root, "copts.bzl"))
    except ValueError as e:
        lists = {}
        errors.append(str(e))
    errors += list_errors(lists)

    files = subprocess.run(["git", "-C", root, "ls-files"], check=True,
                           capture_output=True, text=True).stdout.split()
    scanned = [f for f in files
               if (os.path.basename(f) in ("BUILD", "BUILD.bazel", "WORKSPACE")
                   or f.endswith(".bzl") or f.endswith(".consumer")
                   or f == "setup.py" or f in FUZZ_SCRIPTS)
               and f not in NOT_SCANNED and os.path.isfile(os.path.join(root, f))]
    for rel in scanned:
        with open(os.path.join(root, rel)) as f:
            errors += spelled_flags(rel, f.read())
    with open(os.path.join(root, "setup.py")) as f, \
            open(os.path.join(root, FUZZ_COPTS_READER)) as g:
        errors += reader_errors(f.read(), g.read())
    if len(scanned) < 15:
        errors.append(f"only {len(scanned)} files scanned under {root}")

    for e in errors:
        print("FAIL:", e)
    print(f"copts.bzl: {len(lists)} lists; {len(scanned)} files scanned")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
