/* SPDX-License-Identifier: MIT */
/*
 * prometheus_parity_test.c -- what percpu-stat --prometheus prints of the
 * sample segment (testdata/sample.prom, checked against the command by
 * percpu_stat_test.sh) is byte for byte what counter_sysctl_prometheus()
 * prints inside a process holding the same tree: the same names, help
 * defaults, escaping, label order and signed gauges.  (Test-only: the
 * reader itself never links the library.)
 * usage: prometheus_parity_test testdata/sample.prom
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t size = 0;

	if (!f || getdelim(&text, &size, '\0', f) < 0) {
		fprintf(stderr, "prometheus_parity_test: cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	return text;
}

/* The tree of segment_builder.c's sb_sample(), registered for real. */
static void register_sample(void)
{
	static const char *const service[] = { "service", "api", NULL };
	static const char *const codes[] = { "2xx", "4xx", "5xx" };
	static const char *const path[] = { "path", "/a\"b\\c\nd", NULL };
	static counter_u64_t requests, lives, wired, code[3], quoted, pending[1];

	requests = counter_u64_alloc(M_WAITOK);
	lives = counter_u64_alloc(M_WAITOK);
	wired = counter_u64_alloc(M_WAITOK);
	quoted = counter_u64_alloc(M_WAITOK);
	for (int i = 0; i < 3; i++)
		code[i] = counter_u64_alloc(M_WAITOK);
	counter_u64_add(requests, 43);
	counter_u64_add(lives, 7);
	counter_u64_add(wired, -3);
	counter_u64_add(code[0], 10);
	counter_u64_add(code[2], 5);
	if (!counter_sysctl_add(NULL, "http", "requests", CTLFLAG_RD, &requests, 1, "Requests served") ||
	    !counter_sysctl_add(NULL, "9lives", "n", CTLFLAG_RD, &lives, 1, NULL) ||
	    !counter_sysctl_add(NULL, "vm", "pages_wired", CTLFLAG_RD | CTLFLAG_GAUGE, &wired, 1,
	                        "Pages wired\nnow, in C:\\ terms") ||
	    !counter_sysctl_add_labeled(NULL, "http", "codes", CTLFLAG_RD, code, 3,
	                                "Responses by \"code\"", service, "code", codes) ||
	    !counter_sysctl_add(NULL, "static", "pending", CTLFLAG_RD, pending, 1, NULL) ||
	    !counter_sysctl_add_labeled(NULL, "x", "quoted", CTLFLAG_RD | CTLFLAG_GAUGE, &quoted, 1,
	                                NULL, path, NULL, NULL)) {
		fprintf(stderr, "prometheus_parity_test: %s\n", counter_sysctl_last_error());
		exit(1);
	}
}

int main(int argc, char **argv)
{
	char *expected, *dumped;
	int same;

	if (argc != 2) {
		fprintf(stderr, "usage: prometheus_parity_test SAMPLE.prom\n");
		return 2;
	}
	expected = read_file(argv[1]);
	register_sample();
	dumped = counter_sysctl_prometheus_string(NULL);
	same = dumped && strcmp(dumped, expected) == 0;
	printf("%s: percpu-stat's rendering of the sample %s counter_sysctl_prometheus()'s\n",
	       same ? "ok" : "FAIL", same ? "is" : "is NOT");
	if (!same)
		printf("--- counter_sysctl_prometheus():\n%s--- testdata/sample.prom:\n%s",
		       dumped ? dumped : "(NULL)\n", expected);
	/* Negative control: the comparison tells one changed byte. */
	expected[strlen(expected) - 2] ^= 1;
	if (dumped && strcmp(dumped, expected) == 0) {
		printf("FAIL: the comparison cannot tell a changed byte\n");
		same = 0;
	}
	free(dumped);
	free(expected);
	return same ? 0 : 1;
}
