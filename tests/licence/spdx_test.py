# SPDX-License-Identifier: MIT
"""Fails if a source file we own lacks its SPDX line, or if the licence
drops out of LICENSE, pyproject.toml or the //:dist tarball."""

import os
import subprocess
import sys
import tarfile
import tomllib

SPDX = "SPDX-License-Identifier: MIT"
SUFFIXES = (".c", ".h", ".py", ".pyi", ".i", ".sh", ".bzl", ".lds", ".supp",
            ".toml")
NAMES = {"BUILD", "WORKSPACE", ".bazelrc", ".clang-format"}
# Not ours to tag: fuzz corpus inputs (data, not source).
SKIP_PREFIXES = ("tests/fuzz/corpus/", "cli/percpu-stat/fuzz/corpus/")


def source_root():
    here = os.path.realpath("pyproject.toml")  # runfiles cwd is the workspace
    return os.path.dirname(here)


def tracked_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files"], check=True,
                             capture_output=True, text=True).stdout
        return out.split()
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs
                       if not x.startswith((".git", "bazel-"))]
            files += [os.path.relpath(os.path.join(d, n), root)
                      for n in names]
        return files


def wants_spdx(root, rel):
    if rel.startswith(SKIP_PREFIXES):
        return False
    base = os.path.basename(rel)
    if base in NAMES or base.endswith(SUFFIXES):
        return True
    with open(os.path.join(root, rel), "rb") as f:
        return f.read(2) == b"#!"


def has_spdx(path):
    with open(path, errors="replace") as f:
        head = [f.readline() for _ in range(2)]
    if head[0].startswith("#!"):
        return SPDX in head[1]
    return SPDX in head[0]


def main():
    errors = []
    root = source_root()
    checked = 0
    for rel in tracked_files(root):
        path = os.path.join(root, rel)
        if not os.path.isfile(path) or not wants_spdx(root, rel):
            continue
        checked += 1
        if not has_spdx(path):
            errors.append(f"{rel}: no '{SPDX}' on its first line "
                          "(after a shebang)")
    if checked < 100:
        errors.append(f"only {checked} source files found under {root}")

    with open("LICENSE") as f:
        lic = f.read()
    if not lic.startswith("MIT License") or "the percpu authors" not in lic:
        errors.append("LICENSE is not the MIT licence of the percpu authors")

    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    if project.get("license") != {"text": "MIT"}:
        errors.append(f"pyproject.toml license = {project.get('license')!r}")
    if "License :: OSI Approved :: MIT License" not in project.get(
            "classifiers", []):
        errors.append("pyproject.toml lacks the MIT classifier")

    with tarfile.open(sys.argv[1]) as tar:
        try:
            shipped = tar.extractfile("LICENSE").read().decode()
        except KeyError:
            shipped = None
    if shipped != lic:
        errors.append("//:dist does not ship LICENSE at its top level")

    for e in errors:
        print("FAIL:", e)
    print(f"{checked} source files checked")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
