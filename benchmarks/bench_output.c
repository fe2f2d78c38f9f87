/* SPDX-License-Identifier: MIT */
/*
 * bench_output.c -- see bench_output.h.
 */
#define _GNU_SOURCE
#include "bench_output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

static FILE *g_csv;
static char g_csv_path[4096];

static void mkdir_p(const char *dir)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0777);
			*p = '/';
		}
	if (mkdir(buf, 0777) != 0 && errno != EEXIST)
		bench_die("cannot create %s: %s", buf, strerror(errno));
}

void bench_csv_open(const char *path)
{
	if (path) {
		snprintf(g_csv_path, sizeof(g_csv_path), "%s", path);
	} else {
		/* bazel run: cwd is the runfiles tree; write to the workspace. */
		const char *ws = getenv("BUILD_WORKSPACE_DIRECTORY");
		char dir[3072], ignore[3200];
		FILE *f;

		snprintf(dir, sizeof(dir), "%s%sbench-out", ws ? ws : "",
		         ws ? "/" : "");
		mkdir_p(dir);
		/* Results are not sources: keep them out of git status. */
		snprintf(ignore, sizeof(ignore), "%s/.gitignore", dir);
		if (access(ignore, F_OK) != 0 && (f = fopen(ignore, "w"))) {
			fputs("# benchmark output (benchmarks/scaling)\n*\n", f);
			fclose(f);
		}
		snprintf(g_csv_path, sizeof(g_csv_path), "%s/scaling.csv", dir);
	}
	g_csv = fopen(g_csv_path, "w");
	if (!g_csv)
		bench_die("cannot write %s: %s", g_csv_path, strerror(errno));
	fprintf(g_csv, "primitive,impl,threads,placement,ns_per_op,mops_total\n");
}

void bench_csv_row(const char *primitive, const char *impl, int threads,
                   const char *placement, double ns, double mops)
{
	if (!g_csv)
		return;
	/* %g for the rate: a latency row's mops_total is 1000 / median ns,
	 * which a fixed 3 decimals printed as 0.000 once a loaded machine
	 * took over 2 ms (the smoke test then read the row as malformed). */
	fprintf(g_csv, "%s,%s,%d,%s,%.4f,%.6g\n", primitive, impl, threads,
	        placement, ns, mops);
	fflush(g_csv);
}

/* plot_scaling.py: next to the sources (cwd under bazel run is the
 * runfiles tree, which holds it as a data file), or in the workspace. */
static bool find_plot_script(char *out, size_t size)
{
	const char *ws = getenv("BUILD_WORKSPACE_DIRECTORY");
	char exe[3072];
	ssize_t len;

	snprintf(out, size, "benchmarks/plot_scaling.py");
	if (access(out, R_OK) == 0)
		return true;
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = '\0';
		snprintf(out, size, "%s.runfiles/percpu/benchmarks/plot_scaling.py", exe);
		if (access(out, R_OK) == 0)
			return true;
	}
	if (ws) {
		snprintf(out, size, "%s/benchmarks/plot_scaling.py", ws);
		if (access(out, R_OK) == 0)
			return true;
	}
	return false;
}

void bench_plot(const char *csv_path, int ncpu_count)
{
	char script[4096], dir[4096], ncpus[16];
	char *slash;
	pid_t pid;
	int status;

	if (!find_plot_script(script, sizeof(script))) {
		printf("plots skipped: benchmarks/plot_scaling.py not found\n");
		return;
	}
	snprintf(dir, sizeof(dir), "%s", csv_path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("plots skipped: fork: %s\n", strerror(errno));
		return;
	}
	if (pid == 0) {
		snprintf(ncpus, sizeof(ncpus), "%d", ncpu_count);
		execl("/usr/bin/python3", "python3", script, csv_path, dir,
		      ncpus, (char *)NULL);
		printf("plots skipped: cannot run /usr/bin/python3: %s\n",
		       strerror(errno));
		fflush(stdout);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		printf("plots: plot_scaling.py failed (the CSV is complete)\n");
}

bool bench_csv_close(void)
{
	if (!g_csv)
		return false;
	if (fclose(g_csv) != 0)
		bench_die("writing %s: %s", g_csv_path, strerror(errno));
	g_csv = NULL;
	return true;
}

const char *bench_csv_path(void)
{
	return g_csv_path;
}
