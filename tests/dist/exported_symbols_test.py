# SPDX-License-Identifier: MIT
"""libpercpu.so.0 exports exactly its public API: every function and
variable declared (not defined inline) at file scope in the public
headers, and nothing else -- no percpu_die/percpu_warn, no internal
helpers, no test-only hooks that the headers do not declare.  A name
declared only for test builds (inside #ifdef PERCPU_TEST_INJECT) need not
be exported (the arch headers' percpu_test_inject_spins: tests link the
static library).

usage: exported_symbols_test.py LIBPERCPU_SO HEADER..."""

import re
import subprocess
import sys


# What a header declares for test builds only (no #if nests inside one).
TEST_BLOCK = re.compile(r"^[ \t]*#ifdef PERCPU_TEST_INJECT\b(.*?)^[ \t]*#(?:else|endif)",
                        re.S | re.M)


def declared(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
    text = re.sub(r'extern\s*"C"\s*\{', " ", text)
    text = re.sub(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)", " ", text)
    names, depth, stmt = set(), 0, ""
    for ch in text:
        if ch == "{":
            if depth == 0:
                stmt += "{"  # an inline definition or a struct body
            depth += 1
            continue
        if ch == "}":
            depth = max(depth - 1, 0)  # extern "C"'s closing brace
            if depth == 0 and not stmt.lstrip().startswith(
                    ("typedef", "struct", "union", "enum")):
                stmt = ""  # the end of an inline function's body
            continue
        if depth:
            continue
        if ch != ";":
            stmt += ch
            continue
        s, stmt = " ".join(stmt.split()), ""
        if "{" in s or not s or s.startswith(("static", "typedef")):
            continue
        if s.startswith(("struct", "union", "enum")) and "(" not in s:
            continue  # a forward declaration
        m = re.match(r"[^()]*\(\s*\*\s*(?:volatile\s+)?(\w+)\s*\)\s*\(", s)
        if m:  # a pointer-to-function variable
            names.add(m.group(1))
            continue
        m = re.match(r"[^()]*?(\w+)\s*\(", s)  # the first "(" names it
        if m and not s.startswith("extern __thread"):
            names.add(m.group(1))
            continue
        m = re.search(r"(\w+)\s*(?:\[[^\]]*\])?\s*$", s)
        if m:
            names.add(m.group(1))
    names.discard("__attribute__")
    return names


def main():
    so, headers = sys.argv[1], sys.argv[2:]
    out = subprocess.run(["nm", "-D", "--defined-only", so], check=True,
                         capture_output=True, text=True).stdout
    exported = {l.split()[-1].split("@")[0] for l in out.splitlines()
                if len(l.split()) == 3 and l.split()[1] != "A"
                and not l.split()[-1].startswith("_")}
    public, test_only = set(), set()
    for h in headers:
        with open(h) as f:
            text = f.read()
        public |= declared(text)
        for block in TEST_BLOCK.findall(text):
            test_only |= declared(block)
    public = {n for n in public if n.startswith(("percpu_", "counter_",
                                                 "localcount_", "sysctl_"))}
    # Declared for test builds only (#ifdef PERCPU_TEST_INJECT): the
    # library may export it or not; anything exported must be declared.
    extra = sorted(exported - public)
    missing = sorted(public - exported - test_only)
    for n in extra:
        print("FAIL: exported but not in a public header:", n)
    for n in missing:
        print("FAIL: declared in a public header but not exported:", n)
    print(f"{len(exported)} exported, {len(public)} declared")
    return 1 if extra or missing else 0


if __name__ == "__main__":
    sys.exit(main())
