/* SPDX-License-Identifier: MIT */
/*
 * The C scrape target of prometheus_server_test.py: registers leaves with
 * exact values, serves GET /metrics (<percpu/metrics_http.h>) on
 * 127.0.0.1 at a port the kernel picks, prints "port N" on stdout and
 * serves until stdin closes.  The values are the ones the test expects
 * (prometheus_server_test.py, C_EXPECTED); all below 2^53, as Prometheus
 * keeps float64s.
 *   promsrv.c.requests    counter   1234567890123
 *   promsrv.c.codes       counter array, labels service="api" and
 *                         code="2xx"/"4xx"/"5xx": 1000, 17, 0
 *   promsrv.c.inflight    gauge (CTLFLAG_GAUGE), signed sum -42
 */
#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>
#include <percpu/metrics_http.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void refused(const char *what)
{
	fprintf(stderr, "c_target: %s: %s\n", what,
	        counter_sysctl_last_error());
	exit(1);
}

int main(void)
{
	static const char *const service[] = { "service", "api", NULL };
	static const char *const codes[] = { "2xx", "4xx", "5xx" };
	counter_u64_t requests = counter_u64_alloc(M_WAITOK);
	counter_u64_t inflight = counter_u64_alloc(M_WAITOK);
	counter_u64_t by_code[3];
	struct percpu_metrics_http *srv;
	char buf[256];
	int rc;

	if (counter_u64_array_alloc(by_code, 3, M_WAITOK) != 0) {
		fprintf(stderr, "c_target: counter_u64_array_alloc failed\n");
		return 1;
	}
	counter_u64_add(requests, 1234567890123);
	counter_u64_add(by_code[0], 1000);
	counter_u64_add(by_code[1], 17);
	counter_u64_add(inflight, 8);
	counter_u64_add(inflight, -50);

	if (!SYSCTL_ADD_COUNTER_U64(NULL, "promsrv.c", OID_AUTO, "requests",
	                            CTLFLAG_RD, &requests, "requests served"))
		refused("promsrv.c.requests");
	if (!counter_sysctl_add_labeled(NULL, "promsrv.c", "codes", CTLFLAG_RD,
	                                by_code, 3, "replies by class",
	                                service, "code", codes))
		refused("promsrv.c.codes");
	if (!SYSCTL_ADD_COUNTER_U64(NULL, "promsrv.c", OID_AUTO, "inflight",
	                            CTLFLAG_RD | CTLFLAG_GAUGE, &inflight,
	                            "requests in flight"))
		refused("promsrv.c.inflight");

	rc = percpu_metrics_http_start(&srv, "127.0.0.1:0", NULL);
	if (rc != 0) {
		fprintf(stderr, "c_target: %s\n", percpu_metrics_http_error());
		return 1;
	}
	printf("port %d\n", percpu_metrics_http_port(srv));
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		; /* until stdin closes */
	percpu_metrics_http_stop(srv);
	counter_sysctl_remove("promsrv.c.requests");
	counter_sysctl_remove("promsrv.c.codes");
	counter_sysctl_remove("promsrv.c.inflight");
	counter_u64_array_free(by_code, 3);
	counter_u64_free(requests);
	counter_u64_free(inflight);
	return 0;
}
