#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages percpu needs, and only those missing, and
# buildifier (npm's @bazel/buildifier, which ships the binaries: Debian has
# no package) into a cache directory, not globally.
# Idempotent: a second run installs nothing and says so.  Works as root,
# or through sudo.
#   tools/bootstrap.sh --buildifier-path   prints where buildifier is (or
#                                          will be); installs nothing
set -euo pipefail

BUILDIFIER_VERSION=8.2.1
buildifier_path() {
	local arch
	case $(uname -m) in
	x86_64) arch=amd64 ;;
	aarch64) arch=arm64 ;;
	*) arch=$(uname -m) ;;
	esac
	echo "${PERCPU_BUILDIFIER_DIR:-/var/cache/percpu-buildifier}/$BUILDIFIER_VERSION/node_modules/@bazel/buildifier/buildifier-linux_$arch"
}
if [[ ${1:-} == --buildifier-path ]]; then
	buildifier_path
	exit 0
fi

packages=(
	bazel-bootstrap   # Bazel 4.2.3: builds and tests everything
	bazel-platforms   # @platforms for Bazel, used offline
	build-essential   # gcc, libc headers, make
	busybox-static    # the NUMA VM test's initramfs userland (tests/vm)
	clang             # clang 14: the libFuzzer build (tests/fuzz/run_fuzz.sh)
	clang-format      # clang-format 14: //tests/lint:clang_format_test
	cpio              # packs the NUMA VM test's initramfs
	curl              # the HTTP client of //exporter:metrics_http_test
	gcc-aarch64-linux-gnu # the aarch64 cross build (tests/vm/aarch64, docs/aarch64.md)
	libc6-dev-arm64-cross # glibc 2.36 for arm64 (rseq), for the cross build
	libasan8          # ASan runtime (the asan leg; also preloaded into python3)
	libtsan2          # TSan runtime (the tsan leg)
	libubsan1         # UBSan runtime (the asan leg is ASan+UBSan)
	libclang-rt-14-dev # libFuzzer and clang's sanitizer runtimes (tests/fuzz)
	libmicrohttpd-dev # HTTP for //exporter:metrics_http (GET /metrics)
	libnuma-dev       # NUMA placement of per-CPU units (libnuma)
	libnuma-dev:arm64 # libnuma.a for the aarch64 guest (multiarch: arm64 added below)
	numactl           # numactl --hardware, for humans and the NUMA tests
	prometheus        # promtool check metrics (tests/c:prometheus_test) and the server (tests/prometheus)
	python3           # /usr/bin/python3 for Bazel's Python rules
	python3-dev       # Python headers for the SWIG/CFFI modules
	python3-prometheus-client # percpu.prometheus.Collector (optional for users; its tests need it)
	python3-mypy       # checks the .pyi stubs (tests/pip)
	python3-matplotlib # the benchmark's PNG plots (benchmarks/plot_scaling.py)
	python3-cffi      # the CFFI binding
	python3-pip       # pip install of the package (docs/python.md)
	python3-pytest    # the Python test suite
	python3-setuptools # builds the package for pip
	python3-venv      # venv with system site packages for the install check
	python3-wheel     # pip's wheel build, offline
	qemu-system-arm   # qemu-system-aarch64: the arm64 guest (tests/vm/aarch64)
	qemu-system-x86   # boots multi-node NUMA guests, TCG (tests/vm)
	swig              # the SWIG binding
	valgrind          # the valgrind leg: the C suite under memcheck
)

sudo=()
((EUID == 0)) || sudo=(sudo)
# The aarch64 guest (tests/vm/aarch64) needs arm64 packages: libnuma-dev:arm64
# above, and its kernel (downloaded, never installed, by
# tests/vm/fetch_kernel.sh ... arm64).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	echo "bootstrap: dpkg --add-architecture arm64"
	"${sudo[@]}" dpkg --add-architecture arm64
fi

missing=()
for pkg in "${packages[@]}"; do
	# One line per installed architecture (libnuma-dev and libnuma-dev:arm64
	# are both "libnuma-dev" to an unqualified query): all must be installed.
	status=$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | sort -u || true)
	[[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
# npm, for buildifier, unless some nodejs already brings it (Debian's npm
# package would conflict with another nodejs).
buildifier=$(buildifier_path)
if [[ ! -x $buildifier ]] && ! command -v npm >/dev/null; then
	missing+=(npm)
fi

if ((${#missing[@]} == 0)); then
	echo "bootstrap: all ${#packages[@]} packages present"
else
	echo "bootstrap: installing ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	echo "bootstrap: installed ${#missing[@]} packages"
fi

# buildifier: //tests/lint:buildifier_test (the one thing not from Debian).
if [[ -x $buildifier ]]; then
	echo "bootstrap: buildifier $BUILDIFIER_VERSION present"
else
	prefix=${buildifier%/node_modules/*}
	echo "bootstrap: installing buildifier $BUILDIFIER_VERSION (npm @bazel/buildifier) into $prefix"
	# Not fatal: without it only //tests/lint:buildifier_test fails (and
	# says why); the rest of the matrix still runs.
	if ! { "${sudo[@]}" mkdir -p "$prefix" &&
		"${sudo[@]}" npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
			"@bazel/buildifier@$BUILDIFIER_VERSION" >/dev/null && [[ -x $buildifier ]]; }; then
		echo "bootstrap: WARNING: no buildifier at $buildifier (npm unreachable?);" \
			"//tests/lint:buildifier_test will fail" >&2
	fi
fi
