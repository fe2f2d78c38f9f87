/* SPDX-License-Identifier: MIT */
/*
 * stat_serve.c -- `percpu-stat serve` (stat_serve.h).  The approach of
 * exporter/metrics_http.c: the listening socket is made here (so that a
 * port in use is a clear EADDRINUSE, and port 0's choice can be read back
 * with getsockname) and handed to libmicrohttpd, which serves each
 * connection from a thread of its own.  Each GET /metrics reads every
 * publishing process afresh: nothing is cached between scrapes.
 */
#define _GNU_SOURCE
#include "stat_serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <percpu/stat_reader.h>

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define MAX_CONNECTIONS 16u
#define IDLE_TIMEOUT_S 10u

static const char NOT_FOUND[] = "404 Not Found: only /metrics is served\n";
static const char NOT_ALLOWED[] = "405 Method Not Allowed: GET or HEAD\n";
static const char FAILED[] = "500 Internal Server Error: could not list the processes\n";

/* "A.B.C.D:PORT" or "[v6]:PORT", numeric: 0, or -1 with *why. */
static int parse_address(const char *address, struct sockaddr_storage *ss, socklen_t *len,
                         const char **why)
{
	const char *port_s, *host_end;
	char host[64];
	size_t hlen;
	unsigned long port;
	bool v6 = address[0] == '[';

	memset(ss, 0, sizeof(*ss));
	host_end = v6 ? strchr(address, ']') : strrchr(address, ':');
	if (!host_end || (v6 && host_end[1] != ':') || (!v6 && strchr(address, ':') != host_end)) {
		*why = "expected A.B.C.D:PORT or [IPv6]:PORT";
		return -1;
	}
	hlen = (size_t)(host_end - address) - (v6 ? 1 : 0);
	port_s = host_end + (v6 ? 2 : 1);
	if (hlen >= sizeof(host) || strspn(port_s, "0123456789") != strlen(port_s) || !*port_s ||
	    strlen(port_s) > 5 || (port = strtoul(port_s, NULL, 10)) > 65535) {
		*why = "the port is not a number 0..65535 (or the host is too long)";
		return -1;
	}
	memcpy(host, address + (v6 ? 1 : 0), hlen);
	host[hlen] = '\0';
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1)
			return 0;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		if (inet_pton(AF_INET, host, &sin->sin_addr) == 1)
			return 0;
	}
	*why = "not a numeric address (names are not resolved; IPv6 goes in brackets)";
	return -1;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len, enum MHD_ResponseMemoryMode mode, const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
	enum MHD_Result ok;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free((void *)body);
		return MHD_NO;
	}
	ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (ok == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (ok == MHD_YES)
		ok = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ok;
}

/* Every readable publishing process's counters, merged: the body, or NULL. */
static char *scrape(const char *prefix)
{
	struct percpu_stat_process *procs;
	struct percpu_stat_snapshot *snaps;
	size_t nr, taken = 0;
	char *text;

	if (percpu_stat_list(&procs, &nr, NULL, 0) != 0)
		return NULL;
	snaps = calloc(nr ? nr : 1, sizeof(*snaps));
	if (!snaps) {
		free(procs);
		return NULL;
	}
	/* A process that exits between the listing and its read is left
	 * out, as one that never published. */
	for (size_t i = 0; i < nr; i++)
		if (percpu_stat_snapshot(procs[i].pid, &snaps[taken], NULL, 0) == 0)
			taken++;
	text = percpu_stat_prometheus_merged(snaps, taken, prefix);
	for (size_t i = 0; i < taken; i++)
		percpu_stat_snapshot_free(&snaps[i]);
	free(snaps);
	free(procs);
	return text;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	const char *prefix = cls;
	char *body;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, NOT_FOUND, sizeof(NOT_FOUND) - 1,
		             MHD_RESPMEM_PERSISTENT, "text/plain; charset=utf-8");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, NOT_ALLOWED, sizeof(NOT_ALLOWED) - 1,
		             MHD_RESPMEM_PERSISTENT, "text/plain; charset=utf-8");
	body = scrape(prefix);
	if (!body)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, FAILED, sizeof(FAILED) - 1,
		             MHD_RESPMEM_PERSISTENT, "text/plain; charset=utf-8");
	return reply(conn, MHD_HTTP_OK, body, strlen(body), MHD_RESPMEM_MUST_FREE, CONTENT_TYPE);
}

/* A bound, listening socket; its port (port 0's choice) in *port. */
static int listen_on(const char *address, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	const char *why = NULL;
	int fd, one = 1;

	if (parse_address(address, &ss, &len, &why) != 0) {
		fprintf(stderr, "percpu-stat: serve --listen %s: %s\n", address, why);
		return -2;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, (int)MAX_CONNECTIONS) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		fprintf(stderr, "percpu-stat: serve --listen %s: %s\n", address, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

int stat_serve(const char *address, const char *prefix)
{
	struct percpu_stat_snapshot none = { 0 };
	struct MHD_Daemon *daemon;
	sigset_t stop;
	char *probe;
	int fd, port = 0, sig;

	/* The prefix is checked now, not at the first scrape. */
	probe = percpu_stat_prometheus(&none, prefix);
	if (!probe) {
		fprintf(stderr, "percpu-stat: serve: --prefix '%s' is not the start of a Prometheus "
		                "metric name ([A-Za-z_:][A-Za-z0-9_:]*)\n",
		        prefix);
		return 2;
	}
	free(probe);
	fd = listen_on(address, &port);
	if (fd < 0)
		return fd == -2 ? 2 : 1;
	/* Blocked before libmicrohttpd starts its threads, which inherit the
	 * mask: the signals are taken by sigwait() below only. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                                  (address[0] == '[' ? MHD_USE_IPv6 : 0),
	                          0, NULL, NULL, handle, (void *)(prefix ? prefix : ""),
	                          MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
	                          MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
	                          MHD_OPTION_END);
	if (!daemon) {
		close(fd);
		fprintf(stderr, "percpu-stat: serve --listen %s: libmicrohttpd did not start\n", address);
		return 1;
	}
	if (address[0] == '[')
		printf("percpu-stat: serving http://[%.*s]:%d/metrics\n",
		       (int)(strchr(address, ']') - address - 1), address + 1, port);
	else
		printf("percpu-stat: serving http://%.*s:%d/metrics\n",
		       (int)(strrchr(address, ':') - address), address, port);
	fflush(stdout);
	sigwait(&stop, &sig);
	MHD_stop_daemon(daemon);
	return 0;
}
