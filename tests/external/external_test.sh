#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# percpu from another Bazel workspace, offline: a consumer workspace
# (WORKSPACE.consumer, BUILD.consumer, app.c, metrics_app.c, py_app.py,
# copied to a fresh directory) that names this repository @percpu through
# local_repository and calls percpu_deps(), as README.md says.  It builds
# every public target from there -- @percpu//core:percpu and
# @percpu//exporter:metrics_http (and runs a program on each),
# @percpu//core:libpercpu.so.0, @percpu//:dist, @percpu//python:percpu (and
# runs a Python program on it) -- with its own Bazel server and output root
# under /tmp, so it neither fights nor reuses the caller's.
#
# usage: external_test.sh [PERCPU_REPO]
#   (default: the repository this script is in; under `bazel test` the
#   source tree is found through the README.md runfile)
#   PERCPU_KEEP=1 keeps the temporary workspace and output root (debugging).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ $# -ge 1 ]]; then
	repo=$(cd "$1" && pwd)
elif [[ -n ${TEST_SRCDIR:-} ]]; then
	readme=$(readlink -f "$TEST_SRCDIR/${TEST_WORKSPACE:-percpu}/README.md")
	repo=$(dirname "$readme")
	here=$repo/tests/external
else
	repo=$(cd "$here/../.." && pwd)
fi
test -f "$repo/deps.bzl" || { echo "no deps.bzl in $repo" >&2; exit 1; }

# A short path (the server's socket lives under the output root).
tmp=$(mktemp -d /tmp/percpu-external.XXXXXX)
ws=$tmp/consumer
root=$tmp/root
bazel=(bazel --output_user_root="$root" --max_idle_secs=30)
cleanup() {
	(cd "$ws" 2>/dev/null && "${bazel[@]}" shutdown >/dev/null 2>&1) || true
	chmod -R u+w "$tmp" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
[[ -z ${PERCPU_KEEP:-} ]] || trap - EXIT

mkdir -p "$ws"
sed "s|PERCPU_PATH|$repo|" "$here/WORKSPACE.consumer" >"$ws/WORKSPACE"
cp "$here/BUILD.consumer" "$ws/BUILD"
cp "$here/app.c" "$here/metrics_app.c" "$here/py_app.py" "$ws/"
# The consumer pins the same Bazel as this repository.
cp "$repo/.bazelversion" "$ws/.bazelversion"

# Offline: percpu_deps() must define everything a build needs; a download
# attempt (a repository it forgot) fails instead of hanging.
flags=(
	--nosandbox_debug
	--incompatible_strict_action_env
	--repository_cache=
	--experimental_repository_disable_download
	--jobs=2
	--noshow_progress
)

cd "$ws"
targets=(
	//:app
	//:metrics_app
	//:py_app
	@percpu//core:percpu
	@percpu//core:libpercpu.so.0
	@percpu//:dist
	@percpu//python:percpu
)
echo "+ bazel build ${targets[*]}"
"${bazel[@]}" build "${flags[@]}" "${targets[@]}"

out=$("${bazel[@]}" run "${flags[@]}" //:app 2>/dev/null)
[[ $out == hits=1000 ]] || { echo "//:app printed: $out" >&2; exit 1; }
out=$("${bazel[@]}" run "${flags[@]}" //:metrics_app 2>/dev/null)
[[ $out == served=yes ]] || { echo "//:metrics_app printed: $out" >&2; exit 1; }
out=$("${bazel[@]}" run "${flags[@]}" //:py_app 2>/dev/null)
[[ $out == hits=1000 ]] || { echo "//:py_app printed: $out" >&2; exit 1; }

bin=$("${bazel[@]}" info "${flags[@]}" bazel-bin 2>/dev/null)
# Captured, then matched (`cmd | grep -q` under pipefail: SIGPIPE).
grep -q 'SONAME.*libpercpu.so.0' <<<"$(readelf -d "$bin/external/percpu/core/libpercpu.so.0")"
listing=$(tar -tzf "$bin/external/percpu/percpu-dist.tar.gz")
grep -qx 'lib/libpercpu.a' <<<"$listing"
grep -qx 'lib/libpercpu_metrics_http.a' <<<"$listing"
echo "1 passed, 0 failed"
