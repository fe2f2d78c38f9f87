#!/bin/sh
# SPDX-License-Identifier: MIT
# fetch_kernel_arm64.sh CACHE_DIR
#
# tests/vm/fetch_kernel.sh for the aarch64 guest: make sure
# CACHE_DIR/vmlinuz holds Debian's arm64 *cloud* kernel (the flavour with
# the virtio drivers QEMU's virt machine needs; its config has CONFIG_RSEQ,
# CONFIG_MEMBARRIER and CONFIG_NUMA) and print its path.  The exact
# package linux-image-cloud-arm64:arm64 depends on is downloaded (a glob
# would fetch every version and flavour), unpacked here, and only vmlinuz
# kept.  Needs the arm64 architecture in dpkg (added when we are root:
# dpkg --add-architecture arm64 and apt-get update).
#
# Exit status: 0 with the path on stdout; 2 with the reason on stderr when
# the kernel cannot be had here.  Concurrent callers are serialised by a
# lock in CACHE_DIR.
set -eu
[ $# = 1 ] || { echo "usage: $0 CACHE_DIR" >&2; exit 2; }
cache=$1
cannot() { echo "$*" >&2; exit 2; }

if [ -s "$cache/vmlinuz" ]; then
	echo "$cache/vmlinuz"
	exit 0
fi
mkdir -p "$cache" 2>/dev/null || cannot "cannot create $cache"
[ -w "$cache" ] || cannot "$cache is not writable"
exec 9>"$cache/.lock"
flock 9
if [ -s "$cache/vmlinuz" ]; then
	echo "$cache/vmlinuz"
	exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
	cannot "no apt-get/dpkg-deb: not a Debian system"

root=false
[ "$(id -u)" = 0 ] && root=true
refresh() {
	$root || return 1
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		echo "fetch_kernel_arm64: dpkg --add-architecture arm64" >&2
		dpkg --add-architecture arm64 || return 1
	fi
	echo "fetch_kernel_arm64: apt-get update" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
}
kernel_package() {
	apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

pkg=$(kernel_package)
[ -n "$pkg" ] || { refresh && pkg=$(kernel_package); } || true
[ -n "$pkg" ] || cannot "apt does not know linux-image-cloud-arm64:arm64 (no arm64 package lists, and adding them needs root)"

tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
chown _apt "$tmp" 2>/dev/null || true
download() { (cd "$tmp" && apt-get download -qq "$pkg" >&2 2>"$tmp/err"); }
if ! download; then
	{ refresh && download; } || cannot "apt-get download $pkg failed: $(tail -n 2 "$tmp/err" 2>/dev/null)"
fi
deb=$(ls "$tmp"/*.deb)
echo "fetch_kernel_arm64: $(basename "$deb") downloaded, keeping its vmlinuz" >&2
dpkg-deb --fsys-tarfile "$deb" | (cd "$tmp" && tar -xf - --wildcards './boot/vmlinuz-*')
set -- "$tmp"/boot/vmlinuz-*
[ -s "$1" ] || cannot "no boot/vmlinuz-* in $deb"
cp "$1" "$cache/vmlinuz.new"
echo "$pkg $(basename "$deb")" >"$cache/vmlinuz.package"
mv -f "$cache/vmlinuz.new" "$cache/vmlinuz"
echo "$cache/vmlinuz"
