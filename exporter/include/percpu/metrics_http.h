/* SPDX-License-Identifier: MIT */
/*
 * percpu/metrics_http.h -- serve the counter tree as `GET /metrics` from a
 * C service: the Prometheus text dump of <percpu/counter_sysctl.h> over
 * HTTP, from threads of its own.
 *
 * A separate library (//exporter:metrics_http; pkg-config
 * percpu-metrics-http), on GNU libmicrohttpd: the core library stays free
 * of HTTP, and no HTTP is parsed here -- libmicrohttpd does all of it.
 *
 *   struct percpu_metrics_http *srv;
 *   int err = percpu_metrics_http_start(&srv, "127.0.0.1:9100", NULL);
 *   if (err < 0)   fprintf(stderr, "%s\n", percpu_metrics_http_error());
 *   ...
 *   percpu_metrics_http_stop(srv);
 *
 * What it answers:
 *   GET /metrics    200, Content-Type `text/plain; version=0.0.4;
 *                   charset=utf-8`, the body counter_sysctl_prometheus_
 *                   string(prefix) made for this request (the tree as it
 *                   is when the request is served: no cache);
 *   HEAD /metrics   the same headers (Content-Length included), no body;
 *   other methods   405 Method Not Allowed, `Allow: GET, HEAD`;
 *   other paths     404 Not Found (whatever the method);
 *   a dump failure  500 (out of memory).
 * A query string is ignored (/metrics?x=1 is /metrics), as servers of
 * this format do.  HTTP/1.0 and 1.1, keep-alive, as libmicrohttpd does.
 *
 * Threads: libmicrohttpd's own listening thread, and one thread per
 * connection (MHD_USE_THREAD_PER_CONNECTION), so scrapes run concurrently
 * and a slow or stalled client delays nobody else.  At most
 * PERCPU_METRICS_HTTP_MAX_CONNECTIONS connections at a time (more are
 * refused at accept); an idle connection is closed after
 * PERCPU_METRICS_HTTP_IDLE_TIMEOUT_S seconds.  The dump takes the tree's
 * read lock only (<percpu/counter_sysctl.h>, "Concurrency"): adds to the
 * counters never wait for a scrape.
 *
 * Address: "HOST:PORT", HOST a numeric IPv4 address ("127.0.0.1",
 * "0.0.0.0" for every interface) or a numeric IPv6 address in brackets
 * ("[::1]", "[::]"); no names are resolved (a start never waits on DNS).
 * PORT 0..65535; 0 lets the kernel pick, percpu_metrics_http_port() says
 * which.  The socket is bound and listening when start returns, so a
 * client may connect at once; SO_REUSEADDR is set (a restart does not
 * wait out TIME_WAIT), which on Linux still refuses a port that another
 * socket listens on.
 *
 * Errors: start returns 0, or a negative errno with *out left NULL, and a
 * one-line message for the calling thread in percpu_metrics_http_error(),
 * naming the call, the address and what was wrong, e.g.
 *   percpu_metrics_http_start(127.0.0.1:9100): address already in use
 *   -EINVAL        out or address NULL, an address not of the form above,
 *                  a port out of range, a prefix the Prometheus dump
 *                  refuses (checked now, not at the first scrape);
 *   -EADDRINUSE    the port is taken;  -EADDRNOTAVAIL  no such local
 *                  address;  -EACCES  a privileged port;
 *   -ENOMEM, -EMFILE, ... from socket(2) and pthread_create(3);
 *   -EIO           libmicrohttpd refused to start (its message appended).
 *
 * Stop: percpu_metrics_http_stop() closes the listening socket, closes
 * every open connection (a response being sent is cut off), joins every
 * thread and frees everything; when it returns no callback of this
 * library runs any more and the port is free.  NULL is a no-op.  Call it
 * once per server, not from a request (no callback of the caller's runs
 * inside one, so that cannot happen by accident), not concurrently with
 * itself on the same server.  Counters and leaves may be removed while a
 * server runs (the dump takes the tree's lock); remove them after stop if
 * their removal must not show in a scrape.
 *
 * Fork: a server's threads do not exist in a fork()ed child; the child
 * must neither stop nor use a server its parent started (start its own).
 */
#ifndef PERCPU_METRICS_HTTP_H
#define PERCPU_METRICS_HTTP_H

#ifdef __cplusplus
extern "C" {
#endif

/* Connections served at once, and the idle time before one is closed. */
#define PERCPU_METRICS_HTTP_MAX_CONNECTIONS 64
#define PERCPU_METRICS_HTTP_IDLE_TIMEOUT_S 30

/* The Content-Type of a /metrics reply (the text format, version 0.0.4). */
#define PERCPU_METRICS_HTTP_CONTENT_TYPE \
	"text/plain; version=0.0.4; charset=utf-8"

struct percpu_metrics_http; /* one server, opaque */

/* Options; NULL means all defaults.  Zero-initialise, then set fields. */
struct percpu_metrics_http_options {
	/* Prepended to every metric name (counter_sysctl_prometheus()'s
	 * prefix), e.g. "myapp_"; NULL or "" for none.  Copied. */
	const char *prefix;
};

/*
 * Start serving on `address` (see above).  On success *out is the server
 * and 0 is returned; on failure a negative errno, *out is NULL, and
 * percpu_metrics_http_error() says why.
 */
int percpu_metrics_http_start(struct percpu_metrics_http **out,
                              const char *address,
                              const struct percpu_metrics_http_options *opt);

/* The port the server listens on (the kernel's pick for port 0); -EINVAL
 * for NULL. */
int percpu_metrics_http_port(const struct percpu_metrics_http *srv);

/* Stop, join, free (see above).  NULL: nothing. */
void percpu_metrics_http_stop(struct percpu_metrics_http *srv);

/*
 * The message of this thread's last failed percpu_metrics_http_start(),
 * "" if none has failed.  Valid until that thread's next start.
 */
const char *percpu_metrics_http_error(void);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_METRICS_HTTP_H */
