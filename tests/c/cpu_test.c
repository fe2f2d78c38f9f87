/* SPDX-License-Identifier: MIT */
/*
 * cpu_test.c -- possible-CPU count, the CPU list parser behind it, and
 * the current CPU.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include <percpu/cpu.h>

#include "harness.h"
#include "stress.h"

TEST(cpu_list_parser_accepts_kernel_lists)
{
	CHECK_EQ(percpu_parse_cpu_list("0"), 1);
	CHECK_EQ(percpu_parse_cpu_list("0-1\n"), 2);
	CHECK_EQ(percpu_parse_cpu_list("0-3,8-11"), 12);
	CHECK_EQ(percpu_parse_cpu_list("0,2,4,6"), 7);
	CHECK_EQ(percpu_parse_cpu_list("5"), 6); /* sparse: ids, not a count */
	CHECK_EQ(percpu_parse_cpu_list("0-127\n"), 128);
}

TEST(cpu_list_parser_rejects_garbage)
{
	CHECK_EQ(percpu_parse_cpu_list(""), -EINVAL);
	CHECK_EQ(percpu_parse_cpu_list("\n"), -EINVAL);
	CHECK_EQ(percpu_parse_cpu_list("a-b"), -EINVAL);
	CHECK_EQ(percpu_parse_cpu_list("3-1"), -EINVAL);
	CHECK_EQ(percpu_parse_cpu_list("0-"), -EINVAL);
	CHECK_EQ(percpu_parse_cpu_list("0;1"), -EINVAL);
	CHECK_EQ(percpu_parse_cpu_list("99999999999"), -EINVAL);
}

TEST(possible_cpus_come_from_sysfs_not_the_online_count)
{
	if (getenv("PERCPU_TEST_NO_SYSFS")) {
		/* Unknown: every id the fast path accepts gets a copy. */
		CHECK(!percpu_nr_cpus_exact());
		CHECK_EQ(percpu_nr_cpus(), PERCPU_MAX_CPUS);
		return;
	}
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	char buf[256] = "";

	if (f && fgets(buf, sizeof(buf), f)) {
		CHECK_EQ(percpu_nr_cpus(), percpu_parse_cpu_list(buf));
		CHECK(percpu_nr_cpus_exact());
	}
	if (f)
		fclose(f);
	CHECK(percpu_nr_cpus() >= 1 && percpu_nr_cpus() <= PERCPU_MAX_CPUS);
	CHECK((int)percpu_nr_cpus() >= stress_nr_online());
}

static void current_cpu_in_range(void *arg, int index)
{
	(void)arg;
	stress_pin_to(index);
	for (int i = 0; i < 1000; i++) {
		int cpu = percpu_current_cpu();

		CHECK(cpu >= 0 && (unsigned)cpu < percpu_nr_cpus());
		if (i == 0)
			CHECK_EQ(cpu, sched_getcpu());
	}
}

TEST(current_cpu_is_a_possible_cpu_and_matches_affinity)
{
	stress_run_threads(stress_nr_online(), current_cpu_in_range, NULL);
}

TEST(rseq_registration_is_consistent)
{
	/* glibc registers every thread or none. */
	if (percpu_rseq_process_available())
		CHECK(percpu_rseq_thread_registered());
	else
		CHECK(!percpu_rseq_thread_registered());
}
