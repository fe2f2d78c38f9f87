#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The install tree works for a C user outside Bazel, as README.md says:
# run the README's own commands (the block after its tests/dist marker,
# but the `bazel build` line: the tarball is this test's input), and the
# shared-library line of the paragraph after it, then each program they
# build -- so that README and test cannot drift apart.  Then the one-archive
# promise (lib/libpercpu.a links alone, without -lpercpu_numa) and strict
# C: the example, which declares a SYSCTL_COUNTER_U64 leaf as documented,
# compiles under STRICT_CFLAGS (-std=c11 -pedantic -Werror: copts.bzl's
# STRICT_C11_COPTS, which the BUILD file passes).
# Then the /metrics server (percpu-metrics-http.pc): the README's block
# after its "tests/dist/dist_test.sh (metrics)" marker builds server.c
# (METRICS_EXAMPLE.c), which is run, scraped with curl and stopped.
# Then bin/percpu-stat runs from the tree.
# usage: dist_test.sh DIST.tar.gz EXAMPLE.c METRICS_EXAMPLE.c README.md
#        STRICT_CFLAGS...
set -euo pipefail
tarball=$1 example=$2 metrics_example=$3 readme=$4
shift 4
strict=("$@")
((${#strict[@]})) || { echo "dist_test.sh: no strict C flags given" >&2; exit 2; }
work=${TEST_TMPDIR:-$(mktemp -d)}
work=$(cd "$work" && pwd)

# The README's commands, verbatim.
block=$(awk '/<!-- tests\/dist/ { armed = 1; next }
	armed && /^```sh/ { inside = 1; next }
	inside && /^```/ { exit }
	inside' "$readme")
shared=$(grep -m1 -o 'cc app\.c [^`]*-Wl,-rpath[^`]*' "$readme" || true)
test -n "$block" || { echo "no tests/dist block in $readme" >&2; exit 1; }
test -n "$shared" || { echo "no shared-library line in $readme" >&2; exit 1; }
grep -q '^cc app\.c ' <<<"$block" || { echo "no cc line in the README block" >&2; exit 1; }

# The user's directory: app.c, and what `bazel build //:dist` left there.
user="$work/user"
mkdir -p "$user/bazel-bin"
cp "$example" "$user/app.c"
cp "$tarball" "$user/bazel-bin/percpu-dist.tar.gz"
export HOME="$work/home"
mkdir -p "$HOME"

run_program() {
	local out
	out=$(cd "$user" && ./a.out) || {
		echo "the program built by the README's line did not run (rc $?):" >&2
		ldd "$user/a.out" >&2 || true
		exit 1
	}
	grep -q '^hits=1000 ' <<<"$out" || { echo "unexpected output: $out" >&2; exit 1; }
}

while IFS= read -r line; do
	case "$line" in
	'' | '#'* | 'bazel '*) continue ;;
	esac
	echo "+ $line"
	(cd "$user" && bash -euo pipefail -c "$line")
	case "$line" in
	'cc '*) run_program ;;
	esac
done <<<"$block"

tree="$HOME/percpu"
pc="$tree/lib/pkgconfig/percpu.pc"
test -f "$pc"
test "$(readlink "$tree/lib/libpercpu.so")" = libpercpu.so.0

echo "+ $shared"
rm -f "$user/a.out"
(cd "$user" && bash -euo pipefail -c "$shared")
run_program
# Outputs are captured, then matched: `cmd | grep -q` under pipefail fails
# when grep's early exit SIGPIPEs cmd.
grep -q 'NEEDED.*libpercpu.so.0' <<<"$(readelf -d "$user/a.out")"

# One archive: no libpercpu_numa.a, and libpercpu.a alone resolves the NUMA leaf.
test ! -e "$tree/lib/libpercpu_numa.a"
cc -std=gnu11 -O2 -I"$tree/include" "$example" "$tree/lib/libpercpu.a" \
	-lnuma -lpthread -o "$work/example_static"
grep -q '^hits=1000 ' <<<"$("$work/example_static")"

# Strict C against the installed headers.
cc "${strict[@]}" -I"$tree/include" -c "$example" \
	-o "$work/example_strict.o"

# The /metrics server, as README.md builds it.
mblock=$(awk '/<!-- tests\/dist\/dist_test.sh \(metrics\)/ { armed = 1; next }
	armed && /^```sh/ { inside = 1; next }
	inside && /^```/ { exit }
	inside' "$readme")
test -n "$mblock" || { echo "no tests/dist/dist_test.sh (metrics) block in $readme" >&2; exit 1; }
grep -q '^cc server\.c .*pkg-config --cflags --libs percpu-metrics-http' <<<"$mblock" || {
	echo "no cc server.c line on percpu-metrics-http in the README's metrics block" >&2
	exit 1
}
cp "$metrics_example" "$user/server.c"
while IFS= read -r line; do
	case "$line" in
	'' | '#'*) continue ;;
	esac
	echo "+ $line"
	(cd "$user" && bash -euo pipefail -c "$line")
done <<<"$mblock"
test -x "$user/server" || { echo "the README's metrics block built no ./server" >&2; exit 1; }
# Strict C against the installed header too.
cc "${strict[@]}" -I"$tree/include" -c "$metrics_example" -o "$work/metrics_strict.o"

(cd "$user" && exec ./server) >"$work/server.out" 2>"$work/server.err" &
server=$!
port=
# A bounded wait for its "port=N" line, only so that a broken server
# cannot hang the test.
for _ in $(seq 600); do
	port=$(sed -n 's/^port=//p' "$work/server.out")
	[[ -n $port ]] && break
	kill -0 "$server" 2>/dev/null || break
	sleep 0.1
done
[[ -n $port ]] || { echo "the server printed no port:" >&2; cat "$work/server.err" >&2; exit 1; }
meta=$(curl --silent --show-error --max-time 60 -o "$work/metrics.body" \
	--write-out '%{http_code} %{content_type}' "http://127.0.0.1:$port/metrics")
[[ $meta == '200 text/plain; version=0.0.4; charset=utf-8' ]] || {
	echo "GET /metrics: $meta" >&2
	exit 1
}
grep -Eq '^app_hits(_total)? 1000$' "$work/metrics.body" || {
	echo "no app_hits 1000 sample in:" >&2
	cat "$work/metrics.body" >&2
	exit 1
}
kill -TERM "$server"
rc=0
wait "$server" || rc=$?
((rc == 0)) || { echo "the server exited $rc on SIGTERM:" >&2; cat "$work/server.err" >&2; exit 1; }
grep -q '^stopped$' "$work/server.out"

# percpu-stat, the external reader (bin/percpu-stat): it runs from the
# tree and lists publishing processes (none need exist: the header line).
test -x "$tree/bin/percpu-stat" || { echo "no bin/percpu-stat in the install tree" >&2; exit 1; }
grep -q '^usage: percpu-stat -l$' <<<"$("$tree/bin/percpu-stat" --help)"
grep -q '^PID  *COMMAND  *COUNTERS$' <<<"$("$tree/bin/percpu-stat" -l)"
echo "1 passed, 0 failed"
