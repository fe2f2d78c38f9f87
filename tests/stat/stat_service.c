/* SPDX-License-Identifier: MIT */
/*
 * The C service of the stats-segment end-to-end tests (issue 17): a
 * process that publishes its named counters, read from outside by
 * percpu-stat.  Usage: stat_service MODE THREADS ITERS
 *
 * Every mode registers, under "svc" (statlib.py's c_expected() gives the
 * values once the THREADS threads have each done ITERS rounds):
 *   svc.early        made, added to (41) and registered *before*
 *                    counter_sysctl_publish(): published through the
 *                    library's mirror, refreshed a few times a second;
 *                    no description (the default help)
 *   svc.static.late  a static leaf (SYSCTL_COUNTER_U64) whose counter is
 *                    allocated in main, after its registration
 *   svc.requests     2^40 + one per round
 *   svc.inflight     a gauge (CTLFLAG_GAUGE): +1 -1 per round, then
 *                    -(t + 1) from thread t: negative
 *   svc.codes        a labelled array: service="c", code=2xx/4xx/5xx;
 *                    round i of thread t adds t + 1 to element i % 3
 * then prints "ready" and serves stdin, a line at a time, until it closes:
 *   "prom [PREFIX]"  print counter_sysctl_prometheus() of the whole tree
 *                    (with PREFIX if given), then a line "end"
 * Modes:
 *   values   the above
 *   private  the above without publishing (percpu-stat must say so)
 *   storm    the above; then STORM_THREADS threads register and remove
 *            leaves in a loop until stdin closes: storm.tT.nK over a
 *            counter worth storm_value(T, K), and storm.tT.aK, an array of
 *            2 labelled leaf="tT_aK", worth storm_value(T, K) * 10 + i,
 *            with no pause between rounds
 *   fork     the above, then a fork: the child adds 1000 to svc.requests,
 *            -10 to svc.inflight, 7 to svc.early, 11 to svc.static.late
 *            and registers svc.child_only (5), prints "child PID"; then
 *            the parent prints "parent PID" and "ready".
 *            Both run until stdin closes; the parent exits with the
 *            child's status
 *   race     no counters: two threads increment a plain int, a data race
 *            on purpose (the negative control of storm_test's sanitizer
 *            check, under TSan), then "ready"
 * A failure is a message on stderr and exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>

#define STORM_THREADS 4
#define STORM_LEAVES 20

static counter_u64_t early, static_late, requests, inflight, codes[3];

SYSCTL_COUNTER_U64(_svc_static, OID_AUTO, late, CTLFLAG_RD, &static_late,
                   "allocated after registration");

static long nr_threads, nr_iters;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "stat_service: %s: %s\n", what, why);
	exit(1);
}

static void *add_thread(void *arg)
{
	long t = (long)(intptr_t)arg;

	for (long i = 0; i < nr_iters; i++) {
		counter_u64_add(requests, 1);
		counter_u64_add(codes[i % 3], t + 1);
		counter_u64_add(inflight, 1);
		counter_u64_add(early, 2);
		counter_u64_add(static_late, 3);
		counter_u64_add(inflight, -1);
	}
	counter_u64_add(inflight, -(t + 1));
	return NULL;
}

/* ---- storm -------------------------------------------------------------- */

static int storm_stop;
static counter_u64_t storm_scalar[STORM_THREADS][STORM_LEAVES];
static counter_u64_t storm_array[STORM_THREADS][STORM_LEAVES][2];
static long storm_rounds[STORM_THREADS];

static int64_t storm_value(int t, int k)
{
	return 1000 * (t + 1) + k;
}

static void *storm_thread(void *arg)
{
	int t = (int)(intptr_t)arg;
	static const char *const elems[] = { "x", "y" };

	for (long i = 0; !__atomic_load_n(&storm_stop, __ATOMIC_ACQUIRE); i++) {
		int k = (int)(i % STORM_LEAVES);
		char sname[32], sfull[48], shelp[48], aname[32], afull[48], ahelp[48], leaf[32];
		const char *labels[] = { "leaf", leaf, NULL };

		snprintf(sname, sizeof(sname), "t%d.n%d", t, k);
		snprintf(shelp, sizeof(shelp), "storm scalar t%d n%d", t, k);
		snprintf(sfull, sizeof(sfull), "storm.%s", sname);
		snprintf(aname, sizeof(aname), "t%d.a%d", t, k);
		snprintf(leaf, sizeof(leaf), "t%d_a%d", t, k);
		snprintf(ahelp, sizeof(ahelp), "storm array t%d a%d", t, k);
		snprintf(afull, sizeof(afull), "storm.%s", aname);
		if (!counter_sysctl_add(NULL, "storm", sname, CTLFLAG_RD, &storm_scalar[t][k], 1,
		                        shelp))
			die(sfull, counter_sysctl_last_error());
		if (!counter_sysctl_add_labeled(NULL, "storm", aname, CTLFLAG_RD, storm_array[t][k],
		                                2, ahelp, labels, "elem", elems))
			die(afull, counter_sysctl_last_error());
		if (counter_sysctl_remove(sfull) != 0)
			die(sfull, "counter_sysctl_remove refused");
		if (counter_sysctl_remove(afull) != 0)
			die(afull, "counter_sysctl_remove refused");
		__atomic_store_n(&storm_rounds[t], i + 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void storm_start(pthread_t *threads)
{
	for (int t = 0; t < STORM_THREADS; t++) {
		for (int k = 0; k < STORM_LEAVES; k++) {
			storm_scalar[t][k] = counter_u64_alloc(M_WAITOK);
			counter_u64_add(storm_scalar[t][k], storm_value(t, k));
			if (counter_u64_array_alloc(storm_array[t][k], 2, M_WAITOK) != 0)
				die("storm", "counter_u64_array_alloc failed");
			counter_u64_add(storm_array[t][k][0], storm_value(t, k) * 10);
			counter_u64_add(storm_array[t][k][1], storm_value(t, k) * 10 + 1);
		}
	}
	for (int t = 0; t < STORM_THREADS; t++)
		if (pthread_create(&threads[t], NULL, storm_thread, (void *)(intptr_t)t) != 0)
			die("storm", "pthread_create failed");
}

static void storm_finish(pthread_t *threads)
{
	long rounds = 0;

	__atomic_store_n(&storm_stop, 1, __ATOMIC_RELEASE);
	for (int t = 0; t < STORM_THREADS; t++) {
		pthread_join(threads[t], NULL);
		rounds += storm_rounds[t];
	}
	for (int t = 0; t < STORM_THREADS; t++) {
		for (int k = 0; k < STORM_LEAVES; k++) {
			counter_u64_free(storm_scalar[t][k]);
			counter_u64_array_free(storm_array[t][k], 2);
		}
	}
	fprintf(stderr, "stat_service: storm: %ld registrations of each kind\n", rounds);
}

/* ---- race: a deliberate data race, for TSan to report ---------------- */

static int racy;

static void *race_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++)
		racy++;
	return NULL;
}

static void race(void)
{
	pthread_t a, b;

	pthread_create(&a, NULL, race_thread, NULL);
	pthread_create(&b, NULL, race_thread, NULL);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("racy %d\n", racy > 0);
}

/* ---- setup and stdin ---------------------------------------------------- */

static void setup(int publish)
{
	static const char *const service[] = { "service", "c", NULL };
	static const char *const code_names[] = { "2xx", "4xx", "5xx" };
	pthread_t *threads = calloc((size_t)nr_threads, sizeof(*threads));

	if (!threads)
		die("setup", "out of memory");
	early = counter_u64_alloc(M_WAITOK);
	counter_u64_add(early, 41);
	if (!SYSCTL_ADD_COUNTER_U64(NULL, "svc", OID_AUTO, "early", CTLFLAG_RD, &early, NULL))
		die("svc.early", counter_sysctl_last_error());
	if (counter_sysctl_published())
		die("setup", "published before counter_sysctl_publish() (PERCPU_PUBLISH set?)");
	if (publish) {
		if (counter_sysctl_publish() != 0)
			die("counter_sysctl_publish", counter_sysctl_last_error());
		if (counter_sysctl_published() != 1)
			die("counter_sysctl_published", "not 1 after counter_sysctl_publish()");
	}
	/* Registered (constructor) long before: now it gets its counter. */
	__atomic_store_n(&static_late, counter_u64_alloc(M_WAITOK), __ATOMIC_RELEASE);
	requests = counter_u64_alloc(M_WAITOK);
	inflight = counter_u64_alloc(M_WAITOK);
	if (counter_u64_array_alloc(codes, 3, M_WAITOK) != 0)
		die("setup", "counter_u64_array_alloc failed");
	if (!SYSCTL_ADD_COUNTER_U64(NULL, "svc", OID_AUTO, "requests", CTLFLAG_RD, &requests,
	                            "requests served"))
		die("svc.requests", counter_sysctl_last_error());
	if (!counter_sysctl_add(NULL, "svc", "inflight", CTLFLAG_RD | CTLFLAG_GAUGE, &inflight, 1,
	                        "requests in flight"))
		die("svc.inflight", counter_sysctl_last_error());
	if (!counter_sysctl_add_labeled(NULL, "svc", "codes", CTLFLAG_RD, codes, 3,
	                                "replies by class", service, "code", code_names))
		die("svc.codes", counter_sysctl_last_error());
	counter_u64_add(requests, INT64_C(1) << 40);
	for (long t = 0; t < nr_threads; t++)
		if (pthread_create(&threads[t], NULL, add_thread, (void *)(intptr_t)t) != 0)
			die("setup", "pthread_create failed");
	for (long t = 0; t < nr_threads; t++)
		pthread_join(threads[t], NULL);
	free(threads);
}

/* Answer stdin's commands until it closes. */
static void serve_stdin(void)
{
	char line[64];

	while (fgets(line, sizeof(line), stdin)) {
		if (!strncmp(line, "prom", 4) && (line[4] == '\n' || line[4] == ' ')) {
			char *prefix = line[4] == ' ' ? line + 5 : NULL;

			if (prefix)
				prefix[strcspn(prefix, "\n")] = '\0';
			if (counter_sysctl_prometheus(stdout, prefix) != 0)
				die("counter_sysctl_prometheus", counter_sysctl_last_error());
			puts("end");
		} else {
			printf("unknown command %s", line);
		}
		fflush(stdout);
	}
}

static void fork_mode(void)
{
	int sync[2];
	pid_t child;
	int status;
	char byte;

	if (pipe(sync) != 0)
		die("pipe", strerror(errno));
	fflush(stdout);
	child = fork();
	if (child < 0)
		die("fork", strerror(errno));
	if (child == 0) {
		counter_u64_t only = counter_u64_alloc(M_WAITOK);

		close(sync[0]);
		counter_u64_add(requests, 1000);
		counter_u64_add(inflight, -10);
		counter_u64_add(early, 7);        /* mirrored */
		counter_u64_add(static_late, 11); /* resolved by the watcher */
		counter_u64_add(only, 5);
		if (!SYSCTL_ADD_COUNTER_U64(NULL, "svc", OID_AUTO, "child_only", CTLFLAG_RD, &only,
		                            "registered in the child"))
			die("svc.child_only", counter_sysctl_last_error());
		if (counter_sysctl_published() != 1)
			die("child", "counter_sysctl_published() is not 1 after fork");
		printf("child %d\n", (int)getpid());
		fflush(stdout);
		close(sync[1]); /* the parent may go on */
		serve_stdin();
		exit(0);
	}
	close(sync[1]);
	if (read(sync[0], &byte, 1) != 0) /* EOF: the child printed its line */
		die("fork", "unexpected byte from the child");
	close(sync[0]);
	printf("parent %d\nready\n", (int)getpid());
	fflush(stdout);
	serve_stdin();
	if (waitpid(child, &status, 0) != child)
		die("waitpid", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "stat_service: the child's status is %#x\n", status);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	pthread_t storm[STORM_THREADS];
	const char *mode = argc == 4 ? argv[1] : "";
	int is_storm = !strcmp(mode, "storm");

	if (argc != 4 || (strcmp(mode, "values") && strcmp(mode, "private") && !is_storm &&
	                  strcmp(mode, "fork") && strcmp(mode, "race"))) {
		fprintf(stderr, "usage: stat_service values|private|storm|fork|race "
		                "THREADS ITERS\n");
		return 2;
	}
	if (!strcmp(mode, "race")) {
		race();
		printf("ready\n");
		fflush(stdout);
		serve_stdin();
		return 0;
	}
	nr_threads = atol(argv[2]);
	nr_iters = atol(argv[3]);
	if (nr_threads < 1 || nr_iters < 0)
		die("arguments", "THREADS must be at least 1, ITERS at least 0");
	setup(strcmp(mode, "private") != 0);
	if (!strcmp(mode, "fork")) {
		fork_mode();
		return 0;
	}
	if (is_storm)
		storm_start(storm);
	printf("ready\n");
	fflush(stdout);
	serve_stdin();
	if (is_storm)
		storm_finish(storm);
	return 0;
}
