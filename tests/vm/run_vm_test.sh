#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_vm_test.sh [-v "VARIANT..."] GUEST_TEST_BINARY...
#
# Boot Debian's kernel under QEMU (TCG: never KVM) with fake multi-node NUMA
# topologies and run the (static) guest test binaries inside, once per
# variant:
#
#   2node     CPUs 0-1 | 2-3, 512M per node
#   4node     one CPU and 256M per node
#   memless   CPUs 0-1 | 2 | 3 where node 2 has no memory; node 2 is nearer
#             to node 1 (15) than to node 0 (30), so CPU 3's memory must
#             come from node 1
#   mismatch  negative control: one node, but the 2node expectations --
#             the guest must report FAIL, naming the wrong node
#
# Each node is made of whole sockets (a node splitting a socket's cores
# makes the guest kernel warn that its topology is insane).  The verdict is
# QEMU's exit status via isa-debug-exit (1 = PASS, 3 = FAIL, 0 = the guest
# died first) plus the NUMA-TEST-RESULT line on the serial console.
#
# Environment: PERCPU_VM_KERNEL (a vmlinuz to use), PERCPU_VM_CACHE (where
# the kernel is cached; default /var/cache/percpu-vm, else ~/.cache),
# PERCPU_VM_TIMEOUT (seconds per boot, default 120), PERCPU_VM_SCALE
# (iteration scale inside the guest, default 1).
#
# Skips (prints SKIP and exits 0) only when QEMU or a kernel cannot be had
# on this machine at all; everything else that goes wrong fails.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
variants="2node 4node memless mismatch"
if [[ ${1:-} == -v ]]; then
	variants=$2
	shift 2
fi
(($# > 0)) || { echo "usage: $0 [-v \"VARIANT...\"] GUEST_TEST_BINARY..." >&2; exit 2; }

skip() {
	echo "SKIP: the NUMA VM test cannot run here: $*"
	exit 0
}
say() { echo "vm: $*"; }

# ---- QEMU -------------------------------------------------------------------
need_packages=()
command -v qemu-system-x86_64 >/dev/null || need_packages+=(qemu-system-x86)
[[ -x /bin/busybox || -x /usr/bin/busybox ]] || need_packages+=(busybox-static)
command -v cpio >/dev/null || need_packages+=(cpio)
if ((${#need_packages[@]})); then
	# tools/bootstrap.sh installs these; a bare `bazel test` may come first.
	((EUID == 0)) && command -v apt-get >/dev/null ||
		skip "${need_packages[*]} missing and not root (run tools/bootstrap.sh)"
	say "installing ${need_packages[*]} (tools/bootstrap.sh would have)"
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o DPkg::Lock::Timeout=120 "${need_packages[@]}" ||
	  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o DPkg::Lock::Timeout=120 "${need_packages[@]}"; }; } >/dev/null 2>&1 ||
		skip "apt-get install ${need_packages[*]} failed (no Debian archive reachable?)"
fi
# (No `| head` here: under pipefail its early exit could SIGPIPE QEMU.)
qemu_version=$(qemu-system-x86_64 --version) ||
	skip "qemu-system-x86_64 does not start"
qemu_version=${qemu_version%%$'\n'*}

# ---- the kernel --------------------------------------------------------------
pick_cache() {
	local system=/var/cache/percpu-vm
	local user=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/percpu-vm
	if [[ -n ${PERCPU_VM_CACHE:-} ]]; then
		echo "$PERCPU_VM_CACHE"
	elif [[ -s $system/vmlinuz ]] || { mkdir -p "$system" 2>/dev/null && [[ -w $system ]]; }; then
		echo "$system"
	elif [[ -s $user/vmlinuz ]] || { mkdir -p "$user" 2>/dev/null && [[ -w $user ]]; }; then
		echo "$user"
	fi
}
kernel=${PERCPU_VM_KERNEL:-}
if [[ -z $kernel ]]; then
	cache=$(pick_cache)
	[[ -n $cache ]] || skip "no writable cache directory for the guest kernel"
	fetch_log=$(mktemp)
	if ! kernel=$("$here/fetch_kernel.sh" "$cache" 2>"$fetch_log"); then
		reason=$(tail -n 3 "$fetch_log")
		rm -f "$fetch_log"
		skip "no guest kernel in $cache: $reason"
	fi
	sed 's/^/vm: /' "$fetch_log"
	rm -f "$fetch_log"
fi
[[ -s $kernel ]] || { echo "vm: no kernel at $kernel" >&2; exit 1; }
say "$qemu_version; kernel $kernel ($(cat "$(dirname "$kernel")/vmlinuz.package" 2>/dev/null || echo 'given'))"

# ---- the initramfs -----------------------------------------------------------
work=${TEST_TMPDIR:-$(mktemp -d)}
logs=${TEST_UNDECLARED_OUTPUTS_DIR:-$work}
mkdir -p "$work" "$logs"
t0=$SECONDS
"$here/mkinitramfs.sh" "$work/initrd.cpio.gz" "$here/init" "$@"
say "initramfs $(du -k "$work/initrd.cpio.gz" | cut -f1) KiB in $((SECONDS - t0)) s"

# ---- the variants ------------------------------------------------------------
# Sets: smp, numa (QEMU args), cpu_nodes, mem_nodes, expect (PASS|FAIL) and,
# for an expected FAIL, must_say (a line the guest must print).
variant() {
	numa=() must_say=
	case $1 in
	2node)
		smp=4,sockets=2,cores=2,threads=1
		numa=(-object memory-backend-ram,size=512M,id=m0
		      -object memory-backend-ram,size=512M,id=m1
		      -numa node,nodeid=0,cpus=0-1,memdev=m0
		      -numa node,nodeid=1,cpus=2-3,memdev=m1)
		cpu_nodes=0,0,1,1 mem_nodes=0,0,1,1 expect=PASS ;;
	4node)
		smp=4,sockets=4,cores=1,threads=1
		numa=()
		for n in 0 1 2 3; do
			numa+=(-object memory-backend-ram,size=256M,id=m$n
			       -numa node,nodeid=$n,cpus=$n,memdev=m$n)
		done
		cpu_nodes=0,1,2,3 mem_nodes=0,1,2,3 expect=PASS ;;
	memless)
		smp=4,sockets=4,cores=1,threads=1
		numa=(-object memory-backend-ram,size=512M,id=m0
		      -object memory-backend-ram,size=512M,id=m1
		      -numa node,nodeid=0,cpus=0-1,memdev=m0
		      -numa node,nodeid=1,cpus=2,memdev=m1
		      -numa node,nodeid=2,cpus=3
		      -numa dist,src=0,dst=1,val=20
		      -numa dist,src=0,dst=2,val=30
		      -numa dist,src=1,dst=2,val=15)
		cpu_nodes=0,0,1,2 mem_nodes=0,0,1,1 expect=PASS ;;
	mismatch)
		smp=4,sockets=2,cores=2,threads=1
		numa=()
		cpu_nodes=0,0,1,1 mem_nodes=0,0,1,1 expect=FAIL
		must_say='numa_node_of_cpu(2) = 0, expected 1' ;;
	*)
		echo "vm: unknown variant $1" >&2
		return 1 ;;
	esac
}

# The serial log has SeaBIOS's ANSI escapes and CRLF line ends.
clean_log() {
	sed -e 's/\x1b\[[0-9;?=]*[A-Za-z]//g' -e 's/\x1bc//g' \
	    -e 's/\x1b[()][0-9A-Za-z]//g' -e 's/\r//g' "$1"
}

timeout_s=${PERCPU_VM_TIMEOUT:-120}
passed=0 failed=0 summary=()
for v in $variants; do
	variant "$v"
	log=$logs/guest-$v.log
	say "---- $v: -smp $smp ${numa[*]}"
	start=$SECONDS
	# A guest kernel that never reaches our init (no "=== guest" line:
	# e.g. a soft lockup in its boot-time self-tests, seen under TCG on a
	# loaded host) has judged nothing of ours: boot it again, twice at
	# most.  Once init has run, whatever happens is the verdict.
	for boot in 1 2 3; do
		status=0
		timeout "$timeout_s" qemu-system-x86_64 \
			-machine q35 -accel tcg -cpu max -m 1G -nic none \
			-smp "$smp" "${numa[@]}" \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
			-kernel "$kernel" -initrd "$work/initrd.cpio.gz" \
			-append "console=ttyS0 quiet panic=-1 vmtest_variant=$v vmtest_cpu_nodes=$cpu_nodes vmtest_mem_nodes=$mem_nodes vmtest_scale=${PERCPU_VM_SCALE:-1} vmtest_timeout=$((timeout_s - 30))" \
			-nographic -no-reboot \
			</dev/null >"$log.raw" 2>&1 || status=$?
		clean_log "$log.raw" >"$log"
		if grep -q '^=== guest' "$log" || ((boot == 3)) || ((status != 124 && status != 0)); then
			break
		fi
		say "$v: the guest kernel never reached init (boot $boot, QEMU status $status; its last line: $(tail -n 1 "$log")); booting it again"
		cp "$log" "$log.boot$boot"
	done
	took=$((SECONDS - start))
	if grep -q '^=== guest' "$log"; then
		sed -n '/^=== guest/,$p' "$log" | sed "s/^/[$v] /"
	else   # init never ran: the end of the boot is what tells why
		tail -n 60 "$log" | sed "s/^/[$v] /"
	fi

	result=$(grep -o '^NUMA-TEST-RESULT: [A-Z]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
	ok=false why=
	case $status in
	1) [[ $result == PASS ]] || why="exit 1 but the log says '${result:-nothing}'" ;;
	3) [[ $result == FAIL ]] || why="exit 3 but the log says '${result:-nothing}'" ;;
	124) why="no verdict within ${timeout_s} s (hung?)" result=TIMEOUT ;;
	0) why="QEMU exited 0: the guest died before its verdict (kernel panic?)" result=DIED ;;
	*) why="QEMU exited $status" result=ERROR ;;
	esac
	if [[ -z $why ]]; then
		if [[ $expect == PASS && $result == PASS ]]; then
			if grep -q '^[0-9]* passed, 0 failed' "$log"; then
				ok=true
			else
				why="PASS without a guest test's 'N passed, 0 failed' line"
			fi
		elif [[ $expect == FAIL && $result == FAIL ]]; then
			if grep -q -F "$must_say" "$log"; then
				ok=true
			else
				why="failed, but not with '$must_say'"
			fi
		else
			why="expected $expect, got $result"
		fi
	fi
	if $ok; then
		passed=$((passed + 1))
		summary+=("ok   $v: $result as expected, ${took} s")
	else
		failed=$((failed + 1))
		summary+=("FAIL $v: $why, ${took} s (log: $log)")
	fi
done

echo
say "$qemu_version, $(basename "$kernel") from ${kernel%/*}; total ${SECONDS} s"
printf 'vm: %s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
((failed == 0))
