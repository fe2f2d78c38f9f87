#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_aarch64_vm_test.sh [-v "VARIANT..."] SRCROOT
#
# The aarch64 rseq port in a real arm64 kernel (docs/aarch64.md):
# cross-builds the core and aarch64_guest_test.c statically
# (cross_build.sh), packs the binary as /init of an initramfs, and boots
# Debian's arm64 cloud kernel (tests/vm/fetch_kernel.sh arm64) under
# qemu-system-aarch64 -M virt -cpu max, TCG, once per variant:
#
#   smp2    2 vCPUs
#   smp4    4 vCPUs
#   numa2   4 vCPUs on 2 NUMA nodes (CPUs 0-1 | 2-3, 512M each)
#
# The verdict is the guest's serial output: every check line must say
# "ok" and the last line AARCH64-TEST-RESULT: PASS (the guest's own
# negative control, a non-restartable add, must have been caught losing
# counts).  The log checker is itself checked first against logs it must
# reject.  No timing is judged; PERCPU_VM_TIMEOUT (default 270 s a boot)
# only bounds a guest that hangs.
#
# Skips (prints SKIP, exits 0) only when the cross toolchain, QEMU or the
# kernel cannot be had on this machine at all.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}

variants="smp2 smp4 numa2"
if [[ ${1:-} == -v ]]; then
	variants=$2
	shift 2
fi
(($# == 1)) || { echo "usage: $0 [-v \"VARIANT...\"] SRCROOT" >&2; exit 2; }
src=$1
# (not dirname "$0": Bazel runs a copy of this script from tests/vm)
here=$(cd "$src/tests/vm/aarch64" && pwd)
skip() {
	echo "SKIP: the aarch64 VM test cannot run here: $*"
	exit 0
}
say() { echo "a64vm: $*"; }

# ---- the log checker, and its negative controls ------------------------------
CHECKS="topology_cpus topology_nodes rseq_registered add_exact add_if_zero_exact add_if_zero_mode_set localcount percpu_ref gate_fenced_switch gate_unfenced_control negative_control"
# check_log LOG: 0 if the guest passed every check; else prints why.
check_log() {
	local log=$1 c bad=0
	for c in $CHECKS; do
		grep -q "^ok $c: " "$log" || { echo "no 'ok $c' line"; bad=1; }
	done
	if grep -q '^FAIL ' "$log"; then
		echo "a check failed: $(grep '^FAIL ' "$log" | head -n 3)"
		bad=1
	fi
	grep -q '^AARCH64-TEST-RESULT: PASS' "$log" || { echo "no PASS verdict line"; bad=1; }
	return $bad
}
work=${TEST_TMPDIR:-$(mktemp -d)}
logs=${TEST_UNDECLARED_OUTPUTS_DIR:-$work}
mkdir -p "$work" "$logs"
good="$work/good.log"
{ for c in $CHECKS; do echo "ok $c: x"; done; echo "AARCH64-TEST-RESULT: PASS (0 failed)"; } >"$good"
check_log "$good" >/dev/null || { echo "a64vm: the checker rejects a passing log" >&2; exit 1; }
grep -v '^ok negative_control' "$good" >"$work/bad1.log"
sed 's/^ok add_exact/FAIL add_exact/' "$good" >"$work/bad2.log"
grep -v '^AARCH64-TEST-RESULT' "$good" >"$work/bad3.log"
for b in bad1 bad2 bad3; do
	if check_log "$work/$b.log" >/dev/null; then
		echo "a64vm: negative control: the checker accepted $b.log" >&2
		exit 1
	fi
done
say "log checker: accepts a passing log, rejects 3 failing ones"

# ---- tools ----------------------------------------------------------------------
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v cpio >/dev/null || need+=(cpio)
[[ -f /usr/lib/aarch64-linux-gnu/libnuma.a ]] || need+=(libnuma-dev:arm64)
if ((${#need[@]})); then
	((EUID == 0)) && command -v apt-get >/dev/null ||
		skip "${need[*]} missing and not root (run tools/bootstrap.sh)"
	say "installing ${need[*]} (tools/bootstrap.sh would have)"
	{ dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64; } &&
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o DPkg::Lock::Timeout=120 "${need[@]}" ||
	  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o DPkg::Lock::Timeout=120 "${need[@]}"; }; } >/dev/null 2>&1 ||
		skip "apt-get install ${need[*]} failed (no Debian archive reachable?)"
fi
qemu_version=$(qemu-system-aarch64 --version) || skip "qemu-system-aarch64 does not start"
qemu_version=${qemu_version%%$'\n'*}

# ---- the guest binary -------------------------------------------------------------
build_rc=0
"$here/cross_build.sh" "$src" "$work/build" || build_rc=$?
((build_rc == 2)) && skip "the cross build cannot run here (above)"
((build_rc == 0)) || { echo "a64vm: the cross build failed" >&2; exit 1; }

# ---- the kernel -------------------------------------------------------------------
pick_cache() {
	local system=/var/cache/percpu-vm/arm64
	local user=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/percpu-vm/arm64
	if [[ -n ${PERCPU_VM_CACHE:-} ]]; then
		echo "$PERCPU_VM_CACHE/arm64"
	elif [[ -s $system/vmlinuz ]] || { mkdir -p "$system" 2>/dev/null && [[ -w $system ]]; }; then
		echo "$system"
	elif [[ -s $user/vmlinuz ]] || { mkdir -p "$user" 2>/dev/null && [[ -w $user ]]; }; then
		echo "$user"
	fi
}
kernel=${PERCPU_VM_KERNEL_ARM64:-}
if [[ -z $kernel ]]; then
	cache=$(pick_cache)
	[[ -n $cache ]] || skip "no writable cache directory for the guest kernel"
	kernel=$("$src/tests/vm/fetch_kernel.sh" "$cache" arm64 2>"$work/fetch.log") ||
		skip "no arm64 guest kernel in $cache: $(tail -n 3 "$work/fetch.log")"
	sed 's/^/a64vm: /' "$work/fetch.log"
fi
say "$qemu_version; kernel $kernel ($(cat "$(dirname "$kernel")/vmlinuz.package" 2>/dev/null || echo given))"

# ---- the initramfs: the static test binary is /init ---------------------------------
root="$work/root"
rm -rf "$root"
mkdir -p "$root/proc" "$root/sys" "$root/dev"
install -m 755 "$work/build/aarch64_guest_test" "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -6) >"$work/initrd.gz"

# ---- the variants --------------------------------------------------------------------
rc=0
for v in $variants; do
	numa=() cpus=2 mem=512 nodes=1
	case $v in
	smp2) cpus=2 ;;
	smp4) cpus=4 ;;
	numa2)
		cpus=4 mem=1G nodes=2
		numa=(-object memory-backend-ram,id=m0,size=512M
		      -object memory-backend-ram,id=m1,size=512M
		      -numa node,memdev=m0,cpus=0-1,nodeid=0
		      -numa node,memdev=m1,cpus=2-3,nodeid=1) ;;
	*) echo "a64vm: unknown variant $v" >&2; exit 2 ;;
	esac
	log="$logs/aarch64-$v.log"
	t0=$SECONDS
	qrc=0
	timeout "${PERCPU_VM_TIMEOUT:-270}" qemu-system-aarch64 -M virt -cpu max \
		-smp "$cpus" -m "$mem" "${numa[@]}" -accel tcg \
		-kernel "$kernel" -initrd "$work/initrd.gz" \
		-append "console=ttyAMA0 panic=-1 quiet a64_expect_cpus=$cpus a64_expect_nodes=$nodes" \
		-nographic -no-reboot -monitor none -serial "file:$log.raw" \
		</dev/null >"$log.qemu" 2>&1 || qrc=$?
	tr -d '\r' <"$log.raw" >"$log"
	say "---- $v: $cpus vCPUs${numa:+, 2 NUMA nodes}, QEMU exit $qrc"
	grep -E '^(ok|FAIL|===|AARCH64-TEST-RESULT)' "$log" | sed "s/^/a64vm: [$v] /" || true
	if ((qrc == 124)); then
		echo "a64vm: $v: the guest did not finish within ${PERCPU_VM_TIMEOUT:-270} s" >&2
		tail -n 20 "$log" >&2
		rc=1
	elif ! why=$(check_log "$log"); then
		echo "a64vm: $v FAILED: $why" >&2
		tail -n 30 "$log" >&2
		rc=1
	fi
	# (seconds are for the log only: no verdict depends on them)
	say "$v: $([[ $rc == 0 ]] && echo passed || echo failed) ($((SECONDS - t0)) s)"
done
((rc == 0)) && echo "PASS: the aarch64 rseq path in an arm64 guest ($variants)"
exit $rc
