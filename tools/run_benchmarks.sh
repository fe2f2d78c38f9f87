#!/usr/bin/env bash
# The main job: the per-CPU scaling benchmark, printed as a table.
# Arguments go to the benchmark (e.g. --quick, --csv=out.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
exec bazel run -c opt //benchmarks:scaling -- "$@"
