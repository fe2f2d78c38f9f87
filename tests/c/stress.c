/* SPDX-License-Identifier: MIT */
/*
 * stress.c -- thread, signal and migration machinery for the C tests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <percpu/ops.h>

#include "stress.h"

int stress_nr_online(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set);
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

int stress_oversubscribed(void)
{
	return 6 * stress_nr_online();
}

static cpu_set_t initial_affinity;
static pthread_once_t initial_affinity_once = PTHREAD_ONCE_INIT;

static void read_initial_affinity(void)
{
	sched_getaffinity(0, sizeof(initial_affinity), &initial_affinity);
}

/* The index-th CPU of our affinity mask at startup. */
static int online_cpu(int index)
{
	cpu_set_t initial;
	int n, seen = 0;

	pthread_once(&initial_affinity_once, read_initial_affinity);
	initial = initial_affinity;
	n = CPU_COUNT(&initial);
	index %= n > 0 ? n : 1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &initial) && seen++ == index)
			return cpu;
	return 0;
}

void stress_pin_to(int index)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(online_cpu(index), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

struct run {
	pthread_barrier_t start;
	void (*fn)(void *arg, int index);
	void *arg;
};

struct worker {
	struct run *run;
	int index;
};

static void *worker_main(void *p)
{
	struct worker *w = p;

	pthread_barrier_wait(&w->run->start);
	w->run->fn(w->run->arg, w->index);
	return NULL;
}

void stress_run_threads(int n, void (*fn)(void *arg, int index), void *arg)
{
	struct run run = { .fn = fn, .arg = arg };
	pthread_t *threads = calloc((size_t)n, sizeof(*threads));
	struct worker *workers = calloc((size_t)n, sizeof(*workers));

	if (!threads || !workers) {
		perror("stress_run_threads");
		abort();
	}
	pthread_barrier_init(&run.start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		workers[i] = (struct worker){ .run = &run, .index = i };
		if (pthread_create(&threads[i], NULL, worker_main, &workers[i])) {
			perror("pthread_create");
			abort();
		}
	}
	for (int i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	pthread_barrier_destroy(&run.start);
	free(threads);
	free(workers);
}

static void *storm_counter;
static uint64_t storm_adds;

static void on_alarm(int sig)
{
	(void)sig;
	if (storm_counter) {
		percpu_add(storm_counter, 1);
		__atomic_fetch_add(&storm_adds, 1, __ATOMIC_RELAXED);
	}
}

void stress_signal_storm_start(long interval_us, void *handler_counter)
{
	struct sigaction sa;
	struct itimerval it = {
		.it_interval = { .tv_sec = 0, .tv_usec = interval_us },
		.it_value = { .tv_sec = 0, .tv_usec = interval_us },
	};

	storm_counter = handler_counter;
	storm_adds = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

uint64_t stress_signal_storm_stop(void)
{
	struct itimerval off = { 0 };

	setitimer(ITIMER_REAL, &off, NULL);
	/* A signal already pending still runs the handler: let it drain. */
	usleep(1000);
	signal(SIGALRM, SIG_IGN);
	storm_counter = NULL;
	return __atomic_load_n(&storm_adds, __ATOMIC_RELAXED);
}

uint64_t stress_migrations;
static unsigned migrate_every;
static __thread unsigned migrate_age, migrate_next;

static void migrate_hook(void)
{
	if (++migrate_age < migrate_every)
		return;
	migrate_age = 0;
	stress_pin_to((int)++migrate_next);
	__atomic_fetch_add(&stress_migrations, 1, __ATOMIC_RELAXED);
}

void stress_migrate_every(unsigned every)
{
	migrate_every = every;
	percpu_test_inject_hook = every ? migrate_hook : NULL;
}

void stress_inject_spins(long spins)
{
	percpu_test_inject_spins = spins;
}

uint64_t stress_aborts(void)
{
	return __atomic_load_n(&percpu_test_aborts, __ATOMIC_RELAXED);
}

#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>

/* glibc registered sizeof(struct rseq) or the feature size: try both. */
static int rseq_call(int flags)
{
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	unsigned lens[] = { 32, __rseq_size };

	if (__rseq_size == 0)
		return -ENOSYS;
	for (unsigned i = 0; i < 2; i++)
		if (syscall(SYS_rseq, area, lens[i], flags, RSEQ_SIG) == 0)
			return 0;
	return -errno;
}

int stress_rseq_unregister_self(void)
{
	return rseq_call(RSEQ_FLAG_UNREGISTER);
}

int stress_rseq_register_self(void)
{
	return rseq_call(0);
}
#else
int stress_rseq_unregister_self(void)
{
	return -ENOSYS;
}

int stress_rseq_register_self(void)
{
	return -ENOSYS;
}
#endif
