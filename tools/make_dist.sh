#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Pack what a C user installs: include/percpu/... (one include directory,
# arch headers under percpu/arch/), lib/libpercpu.a, lib/libpercpu.so.0
# with its libpercpu.so link, and a pkg-config file.
# usage: make_dist.sh OUT.tar.gz FILE...   (Bazel passes headers and libraries)
set -euo pipefail
out=$1
shift
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/include/percpu/arch" "$root/lib/pkgconfig"
for f in "$@"; do
	case "$f" in
	LICENSE | */LICENSE) cp "$f" "$root/" ;;
	*/arch/*.h) cp "$f" "$root/include/percpu/arch/" ;;
	*.h) cp "$f" "$root/include/percpu/" ;;
	*/libpercpu.a) cp "$f" "$root/lib/" ;;
	*/libpercpu.so.0) cp "$f" "$root/lib/" ;;
	*/numa/libnuma.a) cp "$f" "$root/lib/libpercpu_numa.a" ;;
	esac
done
ln -s libpercpu.so.0 "$root/lib/libpercpu.so"
cat > "$root/lib/pkgconfig/percpu.pc" <<'PC'
prefix=${pcfiledir}/../..
includedir=${prefix}/include
libdir=${prefix}/lib

Name: percpu
Description: per-CPU counters and reference counts for userspace (rseq, NUMA slab)
Version: 0.1.0
Cflags: -I${includedir}
Libs: -L${libdir} -lpercpu
Libs.private: -lpercpu_numa -lnuma -lpthread
PC
tar -C "$root" -czf "$out" LICENSE include lib
