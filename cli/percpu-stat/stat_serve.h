/* SPDX-License-Identifier: MIT */
/*
 * stat_serve.h -- `percpu-stat serve`: GET /metrics with every readable
 * publishing process's counters (percpu_stat_prometheus_merged()), on
 * libmicrohttpd, as //exporter serves one process's own.
 */
#ifndef PERCPU_STAT_SERVE_H
#define PERCPU_STAT_SERVE_H

/*
 * Listen on `address` (numeric "A.B.C.D:PORT" or "[v6]:PORT"; port 0
 * picks a free one), print "percpu-stat: serving http://ADDRESS:PORT/metrics"
 * on stdout, and serve until SIGINT or SIGTERM.  Returns the exit status:
 * 0 after a signal, 1 if the server could not start, 2 for a bad address
 * or prefix (with a message on stderr).
 */
int stat_serve(const char *address, const char *prefix);

#endif /* PERCPU_STAT_SERVE_H */
