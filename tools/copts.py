# SPDX-License-Identifier: MIT
"""copts.bzl for what cannot load a .bzl file (setup.py, fuzz_common.sh).

    python3 tools/copts.py NAME     prints the list NAME, one flag a line

copts.bzl must hold only assignments of string lists, names of earlier
ones, and their sums with +; anything else is an error here, so the file
cannot grow something Bazel and this reader would see differently.
"""

import ast
import os
import sys

COPTS_BZL = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "copts.bzl")


def _value(node, env, where):
    if isinstance(node, ast.List):
        out = []
        for elt in node.elts:
            if not (isinstance(elt, ast.Constant) and isinstance(elt.value, str)):
                raise ValueError(f"{where}: a list element is not a string")
            out.append(elt.value)
        return out
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise ValueError(f"{where}: {node.id} is not defined above")
        return list(env[node.id])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _value(node.left, env, where) + _value(node.right, env, where)
    raise ValueError(f"{where}: only string lists, names and + are allowed")


def parse(text, filename="copts.bzl"):
    """{NAME: [flag, ...]} for every assignment in text."""
    env = {}
    for stmt in ast.parse(text, filename).body:
        where = f"{filename}:{stmt.lineno}"
        if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)):
            continue  # the docstring
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            raise ValueError(f"{where}: only NAME = [...] assignments")
        env[stmt.targets[0].id] = _value(stmt.value, env, where)
    return env


def load(path=COPTS_BZL):
    with open(path) as f:
        return parse(f.read(), path)


def main(argv):
    if len(argv) != 2:
        print("usage: copts.py NAME", file=sys.stderr)
        return 2
    lists = load()
    if argv[1] not in lists:
        print(f"copts.py: no {argv[1]} in {COPTS_BZL}", file=sys.stderr)
        return 1
    print("\n".join(lists[argv[1]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
