/* SPDX-License-Identifier: MIT */
/*
 * bench_output.h -- the benchmark's files: the CSV, and the PNG plots that
 * benchmarks/plot_scaling.py draws from it.
 *
 * CSV header (exactly): primitive,impl,threads,placement,ns_per_op,mops_total
 * Default path: $BUILD_WORKSPACE_DIRECTORY/bench-out/scaling.csv under
 * `bazel run` (its cwd is the runfiles tree), else ./bench-out/scaling.csv;
 * bench-out/ gets a .gitignore of "*" so results stay out of git status.
 */
#ifndef PERCPU_BENCH_OUTPUT_H
#define PERCPU_BENCH_OUTPUT_H

#include <stdbool.h>

/* Create the CSV at path (NULL: the default path) and write the header.
 * Exits on failure. */
void bench_csv_open(const char *path);

/* One row (a no-op when no CSV is open). */
void bench_csv_row(const char *primitive, const char *impl, int threads,
                   const char *placement, double ns, double mops);

/* Close it; false when none was open. */
bool bench_csv_close(void);

/* The path it was (or is being) written to. */
const char *bench_csv_path(void);

/* Run /usr/bin/python3 plot_scaling.py CSV DIR NCPUS, writing the PNGs
 * next to the CSV; plot_scaling.py is looked up in ./benchmarks (the
 * runfiles tree under bazel run), in <exe>.runfiles, then in the
 * workspace.  Never fails the benchmark: a missing script, python or
 * matplotlib is reported in one line. */
void bench_plot(const char *csv_path, int ncpus);

#endif /* PERCPU_BENCH_OUTPUT_H */
