#!/bin/sh
# SPDX-License-Identifier: MIT
# mkinitramfs.sh OUT.cpio.gz INIT TEST_BINARY...
#
# The NUMA test guest's initramfs: a static busybox as the whole userland,
# INIT as /init, each TEST_BINARY in /tests (run in name order), and
# numactl when the host has it (for the log only).  The tests are meant to
# be static; for a dynamic binary the libraries ldd names are copied to the
# same paths (dlopen()ed ones are not).
set -eu
[ $# -ge 3 ] || { echo "usage: $0 OUT.cpio.gz INIT TEST_BINARY..." >&2; exit 2; }
out=$1 init=$2
shift 2

busybox=
for b in /bin/busybox /usr/bin/busybox; do
	[ -x "$b" ] && { busybox=$b; break; }
done
[ -n "$busybox" ] || { echo "$0: no busybox (apt-get install busybox-static)" >&2; exit 2; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/usr/bin" "$root/tests" "$root/proc" "$root/sys" \
	"$root/dev" "$root/tmp"
cp "$busybox" "$root/bin/busybox"
install -m 755 "$init" "$root/init"
extras=
if [ -x /usr/bin/numactl ]; then
	cp /usr/bin/numactl "$root/usr/bin/"
	extras=/usr/bin/numactl
fi
for t in "$@"; do
	install -m 755 "$t" "$root/tests/"
done
for b in "$busybox" $extras "$@"; do
	# "not a dynamic executable" (static): ldd fails and prints no path.
	{ ldd "$b" 2>/dev/null || true; } | grep -o '/[^ ]*' | while read -r lib; do
		cp --parents -L "$lib" "$root/"
	done
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -6) >"$out"
