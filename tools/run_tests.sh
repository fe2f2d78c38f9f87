#!/usr/bin/env bash
# The whole test suite: install what is missing, then bazel test //...
# Extra arguments go to bazel (e.g. --config=asan).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
exec bazel test //... "$@"
