#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The source distribution: `python3 setup.py sdist` from a copy of the tree,
# then `pip install` of that tarball alone, unpacked by pip in a directory
# where no other source exists -- so every file setup.py compiles must be
# in the sdist (MANIFEST.in) -- and both backends work from the result.
set -euo pipefail
runfiles=${RUNFILES_DIR:-$0.runfiles}/percpu
tmp=${TEST_TMPDIR:-$(mktemp -d)}
export HOME=$tmp PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1
unset PYTHONPATH

src=$tmp/src
mkdir -p "$src"
(cd "$runfiles" && cp -rL --parents LICENSE MANIFEST.in VERSION copts.bzl tools/copts.py setup.py pyproject.toml docs/python.md \
	core numa bindings cli python/percpu "$src")

echo "== sdist"
(cd "$src" && /usr/bin/python3 setup.py -q sdist -d "$tmp/dist" 2>&1 | grep -v -i 'beta\|warnings.warn' || true)
sdist=$(echo "$tmp"/dist/percpu-*.tar.gz)
[[ -f "$sdist" ]] || { echo "sdist_test: no sdist was written" >&2; exit 1; }
tar -tzf "$sdist" | sed 's|^[^/]*/||' | sort >"$tmp/contents"
echo "$(wc -l <"$tmp/contents") entries in $(basename "$sdist")"
for f in LICENSE VERSION copts.bzl tools/copts.py setup.py pyproject.toml core/libpercpu.map bindings/percpu.i \
	bindings/cffi_build.py bindings/percpu_py.c numa/numa.c python/percpu/__init__.py \
	cli/percpu-stat/segment_parse.c cli/percpu-stat/include/percpu/stat_reader.h; do
	grep -qx "$f" "$tmp/contents" || { echo "sdist_test: $f is not in the sdist" >&2; exit 1; }
done
if grep -E '(^|/)BUILD$|\.bzl$' "$tmp/contents" | grep -vx copts.bzl; then
	echo "sdist_test: Bazel files in the sdist (only copts.bzl, which setup.py reads)" >&2
	exit 1
fi

echo "== pip install the sdist alone"
rm -rf "$src"   # nothing but the tarball is left to build from
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
py=$tmp/venv/bin/python
(cd "$tmp" && "$py" -m pip install -q --no-build-isolation --no-index "$sdist")

cd "$tmp"
"$py" - <<'PY'
import os, sys
import percpu
assert percpu.__file__.startswith(os.path.join(sys.prefix, "lib")), percpu.__file__
assert sorted(percpu.available_backends()) == ["cffi", "swig"], percpu.available_backends()
for name in ("swig", "cffi"):
    m = percpu.get_backend(name)
    c = m.Counter()
    c.add(5)
    assert int(c) == 5
    r = m.PercpuRef()
    r.get(); r.put()
print("sdist install works:", os.path.dirname(percpu.__file__), percpu.available_backends())
PY
