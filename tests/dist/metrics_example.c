/* SPDX-License-Identifier: MIT */
/*
 * A C service serving its counters as GET /metrics, built against the
 * install tree by README.md's line (pkg-config percpu-metrics-http) in
 * tests/dist/dist_test.sh: prints "port=N", serves until SIGTERM, stops,
 * prints "stopped".
 */
#define _POSIX_C_SOURCE 200809L
#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>
#include <percpu/metrics_http.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

static counter_u64_t hits;
SYSCTL_COUNTER_U64(_app, OID_AUTO, hits, CTLFLAG_RD, &hits, "Hits");

int main(void)
{
	struct percpu_metrics_http *srv;
	sigset_t term;
	int sig;

	/* Blocked before start, so the server's threads inherit the mask
	 * and sigwait() below is the one to take SIGTERM. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	hits = counter_u64_alloc(M_WAITOK);
	if (!hits)
		return 1;
	counter_u64_add(hits, 1000);
	if (percpu_metrics_http_start(&srv, "127.0.0.1:0", NULL) < 0) {
		fprintf(stderr, "%s\n", percpu_metrics_http_error());
		return 1;
	}
	printf("port=%d\n", percpu_metrics_http_port(srv));
	fflush(stdout);
	sigwait(&term, &sig);
	percpu_metrics_http_stop(srv);
	counter_u64_free(hits);
	hits = NULL;
	puts("stopped");
	return 0;
}
