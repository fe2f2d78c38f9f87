#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: the per-CPU scaling benchmark, printed as a table, with a
# summary of ratios.  Writes bench-out/scaling.csv and, through
# benchmarks/plot_scaling.py (python3-matplotlib), bench-out/scaling_*.png.
# Arguments go to the benchmark (e.g. --quick, --csv=out.csv, --no-plot);
# docs/benchmarks.md explains the method and the output.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
exec bazel run -c opt //benchmarks:scaling -- "$@"
