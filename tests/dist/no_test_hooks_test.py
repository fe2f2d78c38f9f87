# SPDX-License-Identifier: MIT
"""The shipped objects contain no test hook and the installed headers
declare none (issue 14): the hooks exist only in //core:percpu_testing
and the test-only header core/testing/percpu/test_hooks.h.

  --product FILE   a production object: libpercpu.so.0, //core:percpu's
                   archive and shared library, //exporter:metrics_http's,
                   the Python extension modules.  None may define a hook symbol (nm, every
                   defined symbol, local ones included: a static
                   inject_countdown is a hook too), nor hold the name of a
                   test-only environment variable (PERCPU_TEST_*: a
                   getenv() of one is a code path reading a hook).
  --header FILE    an installed header.  None may name a hook.
  --testing FILE   the testing library (//core:percpu_testing): it MUST
                   define hooks, or this test's patterns have stopped
                   matching them and the checks above prove nothing.

A hook is a symbol named percpu_..._test_... or ...inject... (the
spelling core/testing/percpu/test_hooks.h uses for every hook); the
slab's static test_bit() is not one."""

import re
import subprocess
import sys

HOOK_SYMBOL = re.compile(r"^percpu_(?:\w+_)?test_|inject", re.I)
# In headers: a hook's identifier (lower case; the macros that say "test
# build", PERCPU_TEST_INJECT, PERCPU_X86_INJECT, are not hooks).
HOOK_IN_HEADER = re.compile(r"\bpercpu_\w*(?:test|inject)\w*")
HOOK_ENV = b"PERCPU_TEST_"


def defined_symbols(path):
    out = subprocess.run(["nm", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    return {l.split()[-1].split("@")[0] for l in out.splitlines()
            if len(l.split()) == 3}


def main():
    groups = {"--product": [], "--header": [], "--testing": []}
    flag = None
    for arg in sys.argv[1:]:
        if arg in groups:
            flag = arg
        else:
            groups[flag].append(arg)
    failures = []
    for path in groups["--product"]:
        hooks = sorted(s for s in defined_symbols(path) if HOOK_SYMBOL.search(s))
        for s in hooks:
            failures.append(f"{path}: defines test hook {s}")
        with open(path, "rb") as f:
            if HOOK_ENV in f.read():
                failures.append(f"{path}: names a test-only environment "
                                f"variable ({HOOK_ENV.decode()}...)")
    for path in groups["--header"]:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                for m in HOOK_IN_HEADER.finditer(line):
                    failures.append(f"{path}:{n}: names test hook {m.group(0)}")
    for path in groups["--testing"]:
        if not any(HOOK_SYMBOL.search(s) for s in defined_symbols(path)):
            failures.append(f"{path}: the testing library defines no hook: "
                            "the patterns no longer match the hooks")
    for f in failures:
        print("FAIL:", f)
    print(f"{len(groups['--product'])} production objects, "
          f"{len(groups['--header'])} headers checked")
    if not all(groups.values()):
        print("FAIL: usage: --product FILE... --header FILE... --testing FILE...")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
