#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages percpu needs, and only those missing.
# Idempotent: a second run installs nothing and says so.  Works as root,
# or through sudo.
set -euo pipefail

packages=(
	bazel-bootstrap   # Bazel 4.2.3: builds and tests everything
	bazel-platforms   # @platforms for Bazel, used offline
	build-essential   # gcc, libc headers, make
	busybox-static    # the NUMA VM test's initramfs userland (tests/vm)
	clang             # clang 14: the libFuzzer build (tests/fuzz/run_fuzz.sh)
	cpio              # packs the NUMA VM test's initramfs
	libasan8          # ASan runtime (the asan leg; also preloaded into python3)
	libtsan2          # TSan runtime (the tsan leg)
	libubsan1         # UBSan runtime (the asan leg is ASan+UBSan)
	libclang-rt-14-dev # libFuzzer and clang's sanitizer runtimes (tests/fuzz)
	libnuma-dev       # NUMA placement of per-CPU units (libnuma)
	numactl           # numactl --hardware, for humans and the NUMA tests
	python3           # /usr/bin/python3 for Bazel's Python rules
	python3-dev       # Python headers for the SWIG/CFFI modules
	python3-mypy       # checks the .pyi stubs (tests/pip)
	python3-matplotlib # the benchmark's PNG plots (benchmarks/plot_scaling.py)
	python3-cffi      # the CFFI binding
	python3-pip       # pip install of the package (docs/python.md)
	python3-pytest    # the Python test suite
	python3-setuptools # builds the package for pip
	python3-venv      # venv with system site packages for the install check
	python3-wheel     # pip's wheel build, offline
	qemu-system-x86   # boots multi-node NUMA guests, TCG (tests/vm)
	swig              # the SWIG binding
	valgrind          # the valgrind leg: the C suite under memcheck
)

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
	echo "bootstrap: all ${#packages[@]} packages present"
	exit 0
fi

sudo=()
((EUID == 0)) || sudo=(sudo)
echo "bootstrap: installing ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: installed ${#missing[@]} packages"
