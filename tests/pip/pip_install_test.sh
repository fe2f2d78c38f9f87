#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Python package as a user installs it (docs/python.md):
#   1. pip install --no-build-isolation --no-index . into a venv with the
#      system's site packages (offline: setuptools, cffi, swig from Debian);
#   2. both backends import from the venv, not from the source tree;
#   3. the pytest suite (tests/python) passes against the installed package;
#   4. mypy.stubtest: the .pyi stubs match the runtime; mypy --strict
#      accepts a typed program (typed_usage.py), which then runs.
# The source tree comes from this test's runfiles (//:setup.py and the
# filegroups it depends on), copied, so nothing of Bazel's is on the path.
set -euo pipefail
runfiles=${RUNFILES_DIR:-$0.runfiles}/percpu
tmp=${TEST_TMPDIR:-$(mktemp -d)}
export HOME=$tmp PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1
unset PYTHONPATH

src=$tmp/src
mkdir -p "$src"
(cd "$runfiles" && cp -rL --parents LICENSE VERSION copts.bzl tools/copts.py \
	setup.py pyproject.toml docs/python.md \
	core/src core/include core/libpercpu.map numa/numa.c numa/include \
	bindings cli python/percpu "$src")
cp -rL "$runfiles/tests/python" "$tmp/suite"
cp -L "$runfiles/tests/pip/typed_usage.py" "$runfiles/tests/pip/stubtest_allowlist.txt" "$tmp"

echo "== pip install"
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
py=$tmp/venv/bin/python
(cd "$src" && "$py" -m pip install -q --no-build-isolation --no-index .)

cd "$tmp"  # not the source tree: imports must come from the venv
echo "== import"
SRC=$src "$py" - <<'PY'
import os, sys
import percpu
site = os.path.join(sys.prefix, "lib")
assert percpu.__file__.startswith(site), percpu.__file__
assert sorted(percpu.available_backends()) == ["cffi", "swig"], percpu.available_backends()
import importlib.metadata as md
meta = md.metadata("percpu")
assert meta["License"] == "MIT", meta["License"]
with open(os.path.join(os.environ["SRC"], "VERSION")) as f:
    version = f.read().strip()
assert meta["Version"] == version == percpu.__version__, (meta["Version"], version, percpu.__version__)
assert "License :: OSI Approved :: MIT License" in meta.get_all("Classifier"), meta.get_all("Classifier")
assert any(str(f).endswith("LICENSE") for f in md.files("percpu")), "LICENSE not in the wheel"
import subprocess
lib = os.path.join(os.path.dirname(percpu.__file__), "libpercpu.so.0")
syms = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
assert "percpu_die" not in syms and "percpu_warn" not in syms, "the pip-built libpercpu.so.0 exports internals"
# No test hook in the pip build either (//tests/dist:no_test_hooks_test's rule).
import glob, re
objs = [lib] + glob.glob(os.path.join(os.path.dirname(lib), "_percpu_*.so"))
assert len(objs) == 3, objs
for so in objs:
    out = subprocess.run(["nm", "--defined-only", so], check=True, capture_output=True, text=True).stdout
    hooks = [l.split()[-1] for l in out.splitlines() if l.split() and re.search(r"^percpu_(?:\w+_)?test_|inject", l.split()[-1], re.I)]
    assert not hooks, f"{so} defines test hooks {hooks}"
    assert b"PERCPU_TEST_" not in open(so, "rb").read(), f"{so} names a test-only environment variable"
for name in ("swig", "cffi"):
    c = percpu.get_backend(name).Counter()
    c.add(3)
    assert int(c) == 3
print("installed at", os.path.dirname(percpu.__file__), "backends", percpu.available_backends())
PY

echo "== pytest against the installed package"
PERCPU_EXPECT_PATH=$("$py" -c 'import percpu; print(percpu.topology.path())') \
	"$py" -m pytest -q -p no:cacheprovider "$tmp/suite"

"$py" -c 'import mypy' || {
	echo "pip_install_test: mypy missing (Debian python3-mypy; tools/bootstrap.sh installs it)" >&2
	exit 1
}
echo "== stubtest"
"$py" -m mypy.stubtest percpu --allowlist stubtest_allowlist.txt
echo "== mypy --strict typed_usage.py"
"$py" -m mypy --strict --no-incremental --cache-dir=/dev/null typed_usage.py
"$py" typed_usage.py
