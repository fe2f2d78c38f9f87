#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Pack what a C user installs: include/percpu/... (one include directory,
# laid out as in the tree's */include/: arch headers under percpu/arch/),
# lib/libpercpu.a (one archive: the core
# and the NUMA leaf, which Bazel builds as two), lib/libpercpu.so.0 with its
# libpercpu.so link, and a pkg-config file whose Version is the VERSION file's;
# and the /metrics server (//exporter:metrics_http, on libmicrohttpd): its
# header, lib/libpercpu_metrics_http.a and percpu-metrics-http.pc; and
# bin/percpu-stat, the reader of other processes' published counters.
# usage: make_dist.sh OUT.tar.gz FILE...   (Bazel passes VERSION, LICENSE,
#        the headers and the libraries)
set -euo pipefail
out=$1
shift
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/include/percpu/arch" "$root/lib/pkgconfig"
for f in "$@"; do
	case "$f" in
	LICENSE | */LICENSE) cp "$f" "$root/" ;;
	VERSION | */VERSION) version=$(<"$f") ;;
	*/include/percpu/*.h)
		rel=${f##*/include/}
		mkdir -p "$root/include/$(dirname "$rel")"
		cp "$f" "$root/include/$rel"
		;;
	*/libpercpu.a) core_a=$f ;;
	*/libpercpu.so.0) cp "$f" "$root/lib/" ;;
	*/numa/libnuma.a) numa_a=$f ;;
	*/exporter/libmetrics_http.a) cp "$f" "$root/lib/libpercpu_metrics_http.a" ;;
	*/cli/percpu-stat/percpu-stat) install -D -m 0755 "$f" "$root/bin/percpu-stat" ;;
	esac
done
# One archive, so that linking it by hand needs no second one.
ar -M <<MRI
create $root/lib/libpercpu.a
addlib ${core_a:?no libpercpu.a among the inputs}
addlib ${numa_a:?no numa/libnuma.a among the inputs}
save
end
MRI
ln -s libpercpu.so.0 "$root/lib/libpercpu.so"
[[ ${version:-} =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "make_dist.sh: no VERSION among the inputs (or not N.N.N): '${version:-}'" >&2; exit 1; }
# The static archive by default (by path: -lpercpu would pick the .so, and
# a program linked to it would not start without an rpath).  The shared
# library is for -L${libdir} -lpercpu -Wl,-rpath,${libdir} (README.md).
cat > "$root/lib/pkgconfig/percpu.pc" <<PC
prefix=\${pcfiledir}/../..
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: percpu
Description: per-CPU counters and reference counts for userspace (rseq, NUMA slab)
Version: $version
Cflags: -I\${includedir}
Libs: \${libdir}/libpercpu.a -lnuma -lpthread
PC
test -f "$root/lib/libpercpu_metrics_http.a" || { echo "make_dist.sh: no exporter/libmetrics_http.a among the inputs" >&2; exit 1; }
# The /metrics server, a static archive too: the program links
# libmicrohttpd itself, so it is a public Requires (its .pc gives
# -lmicrohttpd and, where not standard, its include directory), not a
# Requires.private, which `pkg-config --libs` without --static ignores.
cat > "$root/lib/pkgconfig/percpu-metrics-http.pc" <<PC
prefix=\${pcfiledir}/../..
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: percpu-metrics-http
Description: GET /metrics for percpu's counter tree, on libmicrohttpd
Version: $version
Requires: percpu = $version, libmicrohttpd
Cflags: -I\${includedir}
Libs: \${libdir}/libpercpu_metrics_http.a -lpthread
PC
test -x "$root/bin/percpu-stat" || { echo "make_dist.sh: no cli/percpu-stat/percpu-stat among the inputs" >&2; exit 1; }
tar -C "$root" -czf "$out" LICENSE bin include lib
