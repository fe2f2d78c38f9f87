/* SPDX-License-Identifier: MIT */
/* A consumer's program on @percpu//exporter:metrics_http (tests/external):
 * starts the /metrics server on a port the kernel picks, stops it. */
#include <percpu/metrics_http.h>
#include <stdio.h>

int main(void)
{
	struct percpu_metrics_http *srv;
	if (percpu_metrics_http_start(&srv, "127.0.0.1:0", NULL) < 0) {
		fprintf(stderr, "%s\n", percpu_metrics_http_error());
		return 1;
	}
	int port = percpu_metrics_http_port(srv);
	percpu_metrics_http_stop(srv);
	printf("served=%s\n", port > 0 ? "yes" : "no");
	return 0;
}
