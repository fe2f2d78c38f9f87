# SPDX-License-Identifier: MIT
"""One version: VERSION.  Fails if a consumer of it disagrees:

  pyproject.toml   dynamic = ["version"], read from VERSION by setuptools
                   (checked statically and by `setup.py --version`)
  python/percpu/__init__.py   __version__ (a literal: the package also runs
                   uninstalled, from the source tree under Bazel)
  //:dist          lib/pkgconfig/percpu.pc's Version (make_dist.sh reads
                   VERSION, which the genrule passes it)

The installed package's metadata is checked against VERSION by
//tests/pip:pip_install_test.  Before the real checks, a drifted copy is
fed to the same comparison, which must reject it (negative control).
usage: version_test.py DIST.tar.gz   (cwd: the runfiles' workspace)
"""

import ast
import os
import re
import subprocess
import sys
import tarfile
import tomllib


def read_version(path="VERSION"):
    with open(path) as f:
        text = f.read()
    if not re.fullmatch(r"\d+\.\d+\.\d+\n", text):
        raise SystemExit(f"FAIL: {path} must hold N.N.N and a newline, "
                         f"not {text!r}")
    return text.strip()


def disagreements(version, copies):
    """The copies (where -> value) that differ from version."""
    return [f"{where} says {value!r}, VERSION says {version!r}"
            for where, value in copies.items() if value != version]


def pyproject_errors(path="pyproject.toml"):
    with open(path, "rb") as f:
        data = tomllib.load(f)
    errors = []
    project = data.get("project", {})
    if "version" in project:
        errors.append("pyproject.toml: [project] version is written; "
                      "it must be dynamic (from VERSION)")
    if "version" not in project.get("dynamic", []):
        errors.append("pyproject.toml: version is not in [project] dynamic")
    dyn = data.get("tool", {}).get("setuptools", {}).get("dynamic", {})
    if dyn.get("version") not in ({"file": "VERSION"}, {"file": ["VERSION"]}):
        errors.append("pyproject.toml: [tool.setuptools.dynamic] version is "
                      f"{dyn.get('version')!r}, not {{ file = \"VERSION\" }}")
    return errors


def setup_py_version():
    out = subprocess.run([sys.executable, "setup.py", "-q", "--version"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def package_version(path="python/percpu/__init__.py"):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and getattr(stmt.targets[0], "id", None) == "__version__"
                and isinstance(stmt.value, ast.Constant)):
            return stmt.value.value
    return None


def pc_version(tarball):
    with tarfile.open(tarball) as tar:
        pc = tar.extractfile("lib/pkgconfig/percpu.pc").read().decode()
    m = re.search(r"^Version: *(\S+)$", pc, re.M)
    return m.group(1) if m else None


def main():
    # Negative control: the comparison must catch a drifted copy.
    if not disagreements("1.2.3", {"a": "1.2.3", "b": "1.2.4"}):
        print("FAIL: negative control: a drifted copy was not caught")
        return 1
    version = read_version()
    errors = pyproject_errors()
    errors += disagreements(version, {
        "setup.py --version": setup_py_version(),
        "python/percpu/__init__.py __version__": package_version(),
        "//:dist percpu.pc Version": pc_version(sys.argv[1]),
    })
    for e in errors:
        print("FAIL:", e)
    print(f"VERSION {version}: {'drift' if errors else 'all consumers agree'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
