# SPDX-License-Identifier: MIT
"""disasm_check.py OBJDUMP OBJ FUNCTION [--expect-reject]

The aarch64 hot-loop check (//tests/vm:aarch64_disasm_test): the loop of
counter_u64_add(c, 1) in FUNCTION must be the rseq section's short form.
The loop is the range from a backward conditional branch's target to the
branch; in it there must be

  - the section: the descriptor armed (adrp/add, str to [area, #8]), the
    cpu compare (ldr w, [area, #4]; cmp; b.ne), the add with the
    immediate form (add xN, xN, #0x1) and one committing str;
  - no atomic instruction (ldadd*, ldxr/stxr and their acquire/release
    forms, cas*, swp*, stadd*) and no call (bl, blr): the fallback's call
    stays out of line.

--expect-reject inverts the verdict: for the negative controls (the
generic arch's loop, which calls the fallback; an atomic add's loop).
"""

import re
import subprocess
import sys

ATOMIC = re.compile(r"^(ldadd|stadd|ld[a]?xr|st[l]?xr|ldaxp|ldxp|stxp|stlxp|cas|swp|ldset|ldclr|ldeor)")


def loop_of(objdump, obj, function):
    out = subprocess.run([objdump, "-dr", "--no-show-raw-insn", obj],
                         check=True, capture_output=True, text=True).stdout
    insns, inside, relocated = [], False, set()
    for line in out.splitlines():
        # A branch to another section (the abort handler in __rseq_failure)
        # is a relocation in an object file: its shown target is no loop.
        m = re.match(r"^\s*([0-9a-f]+): R_AARCH64_(\w+)", line)
        if inside and m:
            if m.group(2) in ("CONDBR19", "JUMP26", "TSTBR14"):
                relocated.add(int(m.group(1), 16))
            continue
        m = re.match(r"^[0-9a-f]+ <(\S+)>:", line)
        if m:
            inside = m.group(1) == function
            continue
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if inside and m:
            insns.append((int(m.group(1), 16), m.group(2), m.group(3)))
    if not insns:
        raise SystemExit(f"no function {function} in {obj}")
    loops = []
    for addr, op, args in insns:
        m = re.match(r"([0-9a-f]+) <", args)
        if (op.startswith("b.") or op in ("cbnz", "cbz", "tbz", "tbnz", "b")) and m:
            target = int(m.group(1), 16)
            if target < addr and addr not in relocated:
                loops.append([i for i in insns if target <= i[0] <= addr])
    if not loops:
        raise SystemExit(f"no loop in {function}")
    return max(loops, key=len)


def problems(loop):
    text = [f"{op} {args}".strip() for _, op, args in loop]
    found = []
    for t in text:
        op = t.split()[0]
        if ATOMIC.match(op):
            found.append(f"atomic instruction: {t}")
        if op in ("bl", "blr"):
            found.append(f"call: {t}")
    joined = "\n".join(text)
    need = {
        "arms the descriptor (adrp)": r"^adrp\s",
        "stores rseq_cs (str x, [x, #8])": r"^str\s+x\d+, \[x\d+, #8\]",
        "reads cpu_id (ldr w, [x, #4])": r"^ldr\s+w\d+, \[x\d+, #4\]",
        "add with the immediate 1": r"^add\s+(x\d+), \1, #0x1$",
    }
    for what, pat in need.items():
        if not re.search(pat, joined, re.M):
            found.append(f"no instruction that {what}")
    commits = [t for t in text if re.match(r"^str\s+x\d+, \[x\d+\]$", t)]
    if len(commits) != 1:
        found.append(f"{len(commits)} plain stores to [xN] (one commit expected)")
    return found, text


def main():
    args = sys.argv[1:]
    expect_reject = "--expect-reject" in args
    args = [a for a in args if a != "--expect-reject"]
    objdump, obj, function = args
    loop, = [loop_of(objdump, obj, function)]
    found, text = problems(loop)
    print(f"{obj} {function}: loop of {len(text)} instructions")
    for t in text:
        print(f"    {t}")
    for p in found:
        print(f"  rejected: {p}")
    if expect_reject:
        if not found:
            print("FAIL: the negative control was accepted")
            return 1
        print("ok: negative control rejected")
        return 0
    if found:
        print("FAIL: not the short form")
        return 1
    print("ok: the short form (no atomic, no call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
