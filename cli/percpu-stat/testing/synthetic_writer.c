/* SPDX-License-Identifier: MIT */
/*
 * synthetic_writer.c -- test code: a process that publishes the sample
 * stats segment (segment_builder.h's sb_sample) the way core's writer
 * will: a memfd named PERCPU_STAT_MEMFD_NAME, grown to size, only the
 * builder's data pages written (the rest stay holes), sealed with
 * F_SEAL_SHRINK, the descriptor kept open.  Then it prints "ready PID" on
 * stdout (the pid to read: the handshake a test waits for) and sleeps
 * until killed.
 *
 * usage: synthetic_writer [FAULT]
 *   (none)        the sample, published
 *   unpublished   header.published 0
 *   no-segment    no memfd at all
 *   bad-magic     a corrupted header
 *   unsealed      not sealed against shrinking
 *   stale-start   header.start_time is not this process's
 *   seq-stuck     slot 0's seq stays odd (a writer stopped mid-change)
 *   fork          the sample, then fork: the child, which only inherited
 *                 the descriptor, is the pid printed (it dies with us)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <percpu/stat_format.h>

#include "cli/percpu-stat/testing/segment_builder.h"

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static uint64_t own_start_time(void)
{
	char buf[1024], *p;
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n;

	if (!f)
		die("/proc/self/stat");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		die("/proc/self/stat field 22");
	return strtoull(p + 1, NULL, 10);
}

/* The builder's segment into a memfd: data pages only. */
static int publish(const struct segment_builder *b, int seal)
{
	int fd = memfd_create(PERCPU_STAT_MEMFD_NAME, MFD_ALLOW_SEALING | MFD_CLOEXEC);

	if (fd < 0)
		die("memfd_create");
	if (ftruncate(fd, (off_t)b->size) != 0)
		die("ftruncate");
	for (size_t p = 0; p < b->size / SB_PAGE; p++)
		if (b->data[p] && pwrite(fd, b->bytes + p * SB_PAGE, SB_PAGE, (off_t)(p * SB_PAGE)) != SB_PAGE)
			die("pwrite");
	if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)
		die("F_ADD_SEALS");
	return fd;
}

int main(int argc, char **argv)
{
	const char *fault = argc > 1 ? argv[1] : "";
	struct segment_builder b;
	pid_t reader_pid = getpid();

	prctl(PR_SET_NAME, "synthetic");
	if (sb_init(&b, 2, getpid(), own_start_time(), "synthetic", true) || sb_sample(&b))
		die("segment_builder");
	if (!strcmp(fault, "unpublished"))
		sb_header(&b)->published = 0;
	else if (!strcmp(fault, "bad-magic"))
		sb_header(&b)->magic[0] = 'X';
	else if (!strcmp(fault, "stale-start"))
		sb_header(&b)->start_time += 1;
	else if (!strcmp(fault, "seq-stuck"))
		sb_slot(&b, 0)->seq = 3;
	else if (*fault && strcmp(fault, "no-segment") && strcmp(fault, "unsealed") &&
	         strcmp(fault, "fork")) {
		fprintf(stderr, "synthetic_writer: unknown fault %s\n", fault);
		return 2;
	}
	if (strcmp(fault, "no-segment") != 0)
		publish(&b, strcmp(fault, "unsealed") != 0);
	if (!strcmp(fault, "fork")) {
		pid_t child = fork();

		if (child < 0)
			die("fork");
		if (child == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			prctl(PR_SET_NAME, "synthetic-kid");
			for (;;)
				pause();
		}
		reader_pid = child;
	}
	printf("ready %ld\n", (long)reader_pid);
	fflush(stdout);
	for (;;)
		pause();
}
