/* SPDX-License-Identifier: MIT */
/*
 * harness.c -- runs the registered tests (see harness.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <percpu/cpu.h>
#include <percpu/fence.h>

#include "harness.h"

/*
 * TSan's options for every test binary: tests fork children that start
 * threads (misuse aborts checked in a child, the percpu_ref worker after
 * fork, fork_test), which TSan refuses by default (die_after_fork).
 * Read by the TSan runtime only; inert in other builds.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}

#define MAX_TESTS 256

static struct {
	const char *name;
	harness_test_fn fn;
} tests[MAX_TESTS];
static int nr_tests;
static int current_failures;

void harness_register(const char *name, harness_test_fn fn)
{
	if (nr_tests == MAX_TESTS) {
		fprintf(stderr, "harness: too many tests\n");
		abort();
	}
	tests[nr_tests].name = name;
	tests[nr_tests].fn = fn;
	nr_tests++;
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	__atomic_fetch_add(&current_failures, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "  %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *harness_expected_path(void)
{
	return getenv("PERCPU_EXPECT_PATH");
}

double harness_scale(void)
{
	const char *s = getenv("PERCPU_TEST_SCALE");
	double v = s ? atof(s) : 1.0;

	return v > 0 ? v : 1.0;
}

long harness_scaled(long n)
{
	long v = (long)((double)n * harness_scale());

	return v > 0 ? v : 1;
}

/* Run fn in a forked child; its wait status, and its stderr into buf. */
static int run_in_child(void (*fn)(void), char *buf, size_t size)
{
	int fds[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	memset(buf, 0, size);
	if (pipe(fds))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		alarm(10);
		fn();
		_exit(0);
	}
	close(fds[1]);
	while (len < size - 1 && (n = read(fds[0], buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	waitpid(pid, &status, 0);
	return status;
}

static bool child_matches(void (*fn)(void), const char *needle, bool must_abort)
{
	char buf[4096];
	int status = run_in_child(fn, buf, sizeof(buf));
	bool ended_right = must_abort ? WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT
	                              : WIFEXITED(status) && WEXITSTATUS(status) == 0;
	bool said_right = needle ? strstr(buf, needle) != NULL : buf[0] == '\0';

	if (ended_right && said_right)
		return true;
	printf("# expected %s with \"%s\"; got %s %d, stderr: %s\n",
	       must_abort ? "an abort" : "a clean exit", needle ? needle : "",
	       WIFSIGNALED(status) ? "signal" : "exit",
	       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), buf);
	return false;
}

bool harness_dies_with(void (*fn)(void), const char *needle)
{
	return child_matches(fn, needle, true);
}

bool harness_warns_with(void (*fn)(void), const char *needle)
{
	return child_matches(fn, needle, false);
}

/* Does the kernel implement rseq at all?  (EINVAL for a NULL area: yes.) */
static bool kernel_has_rseq(void)
{
	return syscall(SYS_rseq, NULL, 0, 0, 0) != 0 && errno == EINVAL;
}

/* What the kernel says, asked directly: is the rseq fence there? */
static bool kernel_offers_rseq_fence(void)
{
	long cmds = syscall(SYS_membarrier, 0 /* QUERY */, 0, 0);

	return cmds >= 0 && (cmds & (1 << 7) /* PRIVATE_EXPEDITED_RSEQ */);
}

/* Returns false, with a message, if the run is not on the path it claims. */
static bool path_as_expected(void)
{
	const char *path = harness_expected_path();
	const char *fence = getenv("PERCPU_EXPECT_FENCE");
	bool rseq = percpu_rseq_thread_registered();
	bool ok = true;

	printf("# path: rseq %s, fence %s, %u possible CPUs\n",
	       rseq ? "registered" : "not registered",
	       percpu_fence_available() ? "available" : "unavailable",
	       percpu_nr_cpus());
	if (path && !strcmp(path, "rseq") && !rseq) {
		if (!kernel_has_rseq()) {
			printf("# SKIP: the kernel has no rseq; rseq path untestable here\n");
			exit(0);
		}
		fprintf(stderr, "expected the rseq path but rseq is not registered\n");
		ok = false;
	}
	if (path && !strcmp(path, "fallback") && rseq) {
		fprintf(stderr, "expected the fallback path but rseq is registered\n");
		ok = false;
	}
	/* "auto": the library must agree with the kernel (and the env switch). */
	if (fence && !strcmp(fence, "auto")) {
		const char *off = getenv("PERCPU_DISABLE_FENCE");
		bool want = kernel_offers_rseq_fence() && !(off && *off && *off != '0');

		if (want != percpu_fence_available()) {
			fprintf(stderr, "fence availability disagrees with the kernel\n");
			ok = false;
		}
	} else if (fence && (!strcmp(fence, "yes") != percpu_fence_available())) {
		fprintf(stderr, "expected fence %s\n", fence);
		ok = false;
	}
	return ok;
}

static bool selected(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!path_as_expected()) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	for (int i = 0; i < nr_tests; i++) {
		struct timespec t0, t1;

		if (!selected(tests[i].name, argc, argv))
			continue;
		current_failures = 0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		tests[i].fn();
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		            (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (current_failures) {
			printf("FAIL - %s (%.0f ms)\n", tests[i].name, ms);
			failed++;
		} else {
			printf("ok - %s (%.0f ms)\n", tests[i].name, ms);
			passed++;
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
