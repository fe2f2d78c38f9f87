#!/bin/sh
# SPDX-License-Identifier: MIT
# fetch_kernel.sh CACHE_DIR [amd64|arm64]
#
# Make sure CACHE_DIR/vmlinuz holds a Debian kernel for a test guest, and
# print its path.  The kernel is the one a metapackage depends on:
#   amd64 (default)  linux-image-amd64, for the NUMA test guest;
#   arm64            linux-image-cloud-arm64:arm64, for the aarch64 guest
#                    (tests/vm/aarch64): the flavour with the virtio
#                    drivers QEMU's virt machine needs; its config has
#                    CONFIG_RSEQ, CONFIG_MEMBARRIER and CONFIG_NUMA.
# The exact package is downloaded (a glob would fetch every version and
# flavour; apt-get download needs no root) and unpacked here -- nothing is
# installed -- and only vmlinuz is kept (8 MB of the 70 MB package).
# Stale package lists are refreshed with apt-get update when we are root
# (for arm64, after dpkg --add-architecture arm64 if it is missing).
#
# Exit status: 0 with the path on stdout; 2 with the reason on stderr when
# the kernel cannot be had here (no apt, no network, no permission).
# Concurrent callers are serialised by a lock in CACHE_DIR.
set -eu
[ $# = 1 ] || [ $# = 2 ] || { echo "usage: $0 CACHE_DIR [amd64|arm64]" >&2; exit 2; }
cache=$1
arch=${2:-amd64}
case $arch in
amd64) meta=linux-image-amd64 ;;
arm64) meta=linux-image-cloud-arm64:arm64 ;;
*) echo "$0: no guest kernel for architecture '$arch'" >&2; exit 2 ;;
esac
cannot() { echo "$*" >&2; exit 2; }

if [ -s "$cache/vmlinuz" ]; then        # cached: may be read-only to us
	echo "$cache/vmlinuz"
	exit 0
fi
mkdir -p "$cache" 2>/dev/null || cannot "cannot create $cache"
[ -w "$cache" ] || cannot "$cache is not writable"
exec 9>"$cache/.lock"
flock 9
if [ -s "$cache/vmlinuz" ]; then        # fetched while we waited
	echo "$cache/vmlinuz"
	exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
	cannot "no apt-get/dpkg-deb: not a Debian system"

root=false
[ "$(id -u)" = 0 ] && root=true
refresh() {
	$root || return 1
	if [ "$arch" = arm64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
		echo "fetch_kernel: dpkg --add-architecture arm64" >&2
		dpkg --add-architecture arm64 || return 1
	fi
	echo "fetch_kernel: apt-get update" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
}
kernel_package() {
	apt-cache depends "$meta" 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

pkg=$(kernel_package)
[ -n "$pkg" ] || { refresh && pkg=$(kernel_package); } || true
[ -n "$pkg" ] || cannot "apt does not know $meta (no package lists, and apt-get update needs root)"

tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt's _apt user downloads into the directory when it may write there.
chmod 755 "$tmp"
chown _apt "$tmp" 2>/dev/null || true
download() { (cd "$tmp" && apt-get download -qq "$pkg" >&2 2>"$tmp/err"); }
if ! download; then
	{ refresh && download; } || cannot "apt-get download $pkg failed: $(tail -n 2 "$tmp/err" 2>/dev/null)"
fi
deb=$(ls "$tmp"/*.deb)
echo "fetch_kernel: $(basename "$deb") downloaded, keeping its vmlinuz" >&2
dpkg-deb --fsys-tarfile "$deb" | (cd "$tmp" && tar -xf - --wildcards './boot/vmlinuz-*')
set -- "$tmp"/boot/vmlinuz-*
[ -s "$1" ] || cannot "no boot/vmlinuz-* in $deb"
cp "$1" "$cache/vmlinuz.new"
echo "$pkg $(basename "$deb")" >"$cache/vmlinuz.package"
mv -f "$cache/vmlinuz.new" "$cache/vmlinuz"
echo "$cache/vmlinuz"
