/* SPDX-License-Identifier: MIT */
/*
 * GET /metrics on libmicrohttpd (design: <percpu/metrics_http.h>).  The
 * listening socket is made here (so that a port in use is EADDRINUSE, not
 * a NULL from MHD_start_daemon with errno unspecified) and handed to
 * libmicrohttpd, which owns it from then on and closes it on stop.
 */
#define _GNU_SOURCE
#include <percpu/metrics_http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <percpu/counter_sysctl.h>

struct percpu_metrics_http {
	struct MHD_Daemon *daemon;
	char *prefix; /* NULL: none */
	int port;
};

#define ERROR_MAX 512
static _Thread_local char last_error[ERROR_MAX];
/* libmicrohttpd's last message on this thread (start runs on the caller's). */
static _Thread_local char mhd_message[ERROR_MAX / 2];

const char *percpu_metrics_http_error(void)
{
	return last_error;
}

static int fail(int err, const char *address, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(int err, const char *address, const char *fmt, ...)
{
	char what[ERROR_MAX - 192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(last_error, sizeof last_error,
	         "percpu_metrics_http_start(%.128s): %s",
	         address ? address : "NULL", what);
	return -err;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	vsnprintf(mhd_message, sizeof mhd_message, fmt, ap);
	size_t n = strlen(mhd_message);
	while (n && (mhd_message[n - 1] == '\n' || mhd_message[n - 1] == '\r'))
		mhd_message[--n] = '\0';
}

/* "A.B.C.D:PORT" or "[v6]:PORT", numeric; fills ss, *len.  0 or -EINVAL. */
static int parse_address(const char *address, struct sockaddr_storage *ss,
                         socklen_t *len, const char **why)
{
	char host[64];
	const char *port_s;
	size_t hlen;
	int family;

	memset(ss, 0, sizeof *ss);
	if (address[0] == '[') {
		const char *close = strchr(address, ']');
		if (!close || close[1] != ':') {
			*why = "expected [IPv6]:PORT";
			return -EINVAL;
		}
		hlen = (size_t)(close - address - 1);
		if (hlen >= sizeof host) {
			*why = "not a numeric IPv6 address in brackets";
			return -EINVAL;
		}
		memcpy(host, address + 1, hlen);
		port_s = close + 2;
		family = AF_INET6;
	} else {
		const char *colon = strchr(address, ':');
		if (!colon) {
			*why = "expected HOST:PORT (numeric IPv4, or [IPv6])";
			return -EINVAL;
		}
		if (strchr(colon + 1, ':')) {
			*why = "an IPv6 address goes in brackets: [::1]:PORT";
			return -EINVAL;
		}
		hlen = (size_t)(colon - address);
		if (hlen >= sizeof host) {
			*why = "not a numeric IPv4 address";
			return -EINVAL;
		}
		memcpy(host, address, hlen);
		port_s = colon + 1;
		family = AF_INET;
	}
	host[hlen] = '\0';

	unsigned long port = 0;
	size_t digits = strspn(port_s, "0123456789");
	if (digits == 0 || digits > 5 || port_s[digits] != '\0') {
		*why = "the port is not a number 0..65535";
		return -EINVAL;
	}
	port = strtoul(port_s, NULL, 10);
	if (port > 65535) {
		*why = "the port is not a number 0..65535";
		return -EINVAL;
	}

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*why = "not a numeric IPv4 address (names are not "
			       "resolved; IPv6 goes in brackets)";
			return -EINVAL;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why = "not a numeric IPv6 address in brackets";
			return -EINVAL;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof *sin6;
	}
	return 0;
}

static const char *socket_error(int err, char *buf, size_t len)
{
	switch (err) {
	case EADDRINUSE:
		return "address already in use (another socket listens on "
		       "that port)";
	case EADDRNOTAVAIL:
		return "address not available (not an address of this host)";
	case EACCES:
		return "permission denied (a privileged port?)";
	default:
		return strerror_r(err, buf, len);
	}
}

static const char NOT_FOUND[] = "404 Not Found: only /metrics is served\n";
static const char NOT_ALLOWED[] = "405 Method Not Allowed: GET or HEAD\n";
static const char NO_MEMORY[] = "500 Internal Server Error: out of memory\n";

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
                             const char *body, size_t len,
                             enum MHD_ResponseMemoryMode mode,
                             const char *content_type)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, mode);
	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free((void *)body);
		return MHD_NO; /* closes the connection */
	}
	enum MHD_Result ok =
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                                content_type);
	if (ok == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
		                             "GET, HEAD");
	if (ok == MHD_YES)
		ok = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	struct percpu_metrics_http *srv = cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;

	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, NOT_FOUND,
		             sizeof NOT_FOUND - 1, MHD_RESPMEM_PERSISTENT,
		             "text/plain; charset=utf-8");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, NOT_ALLOWED,
		             sizeof NOT_ALLOWED - 1, MHD_RESPMEM_PERSISTENT,
		             "text/plain; charset=utf-8");
	/* HEAD too: libmicrohttpd sends the Content-Length, not the body. */
	char *body = counter_sysctl_prometheus_string(srv->prefix);
	if (!body)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NO_MEMORY,
		             sizeof NO_MEMORY - 1, MHD_RESPMEM_PERSISTENT,
		             "text/plain; charset=utf-8");
	return reply(conn, MHD_HTTP_OK, body, strlen(body),
	             MHD_RESPMEM_MUST_FREE, PERCPU_METRICS_HTTP_CONTENT_TYPE);
}

int percpu_metrics_http_start(struct percpu_metrics_http **out,
                              const char *address,
                              const struct percpu_metrics_http_options *opt)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	const char *why = NULL;
	const char *prefix = opt && opt->prefix && *opt->prefix ? opt->prefix
	                                                        : NULL;
	char ebuf[128];
	int err;

	last_error[0] = '\0';
	if (!out)
		return fail(EINVAL, address, "out is NULL");
	*out = NULL;
	if (!address)
		return fail(EINVAL, address, "no address given (HOST:PORT)");
	err = parse_address(address, &ss, &sslen, &why);
	if (err)
		return fail(-err, address, "%s", why);
	if (prefix) {
		/* The dump checks the prefix: now, not at the first scrape. */
		char *probe = counter_sysctl_prometheus_string(prefix);
		if (!probe) {
			err = errno;
			if (err == EINVAL)
				return fail(EINVAL, address,
				            "prefix \"%.64s\" is not the start "
				            "of a Prometheus metric name "
				            "([A-Za-z_:][A-Za-z0-9_:]*)",
				            prefix);
			return fail(err, address, "%s",
			            strerror_r(err, ebuf, sizeof ebuf));
		}
		free(probe);
	}

	struct percpu_metrics_http *srv = calloc(1, sizeof *srv);
	if (!srv)
		return fail(ENOMEM, address, "out of memory");
	if (prefix && !(srv->prefix = strdup(prefix))) {
		free(srv);
		return fail(ENOMEM, address, "out of memory");
	}

	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		goto fail_free;
	}
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, sslen) != 0 ||
	    listen(fd, PERCPU_METRICS_HTTP_MAX_CONNECTIONS) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
		err = errno;
		close(fd);
		goto fail_free;
	}
	srv->port = ntohs(ss.ss_family == AF_INET
	                          ? ((struct sockaddr_in *)&ss)->sin_port
	                          : ((struct sockaddr_in6 *)&ss)->sin6_port);

	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
	                 MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	mhd_message[0] = '\0';
	srv->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, handle, srv, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)PERCPU_METRICS_HTTP_MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)PERCPU_METRICS_HTTP_IDLE_TIMEOUT_S,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_END);
	if (!srv->daemon) {
		/* Whether libmicrohttpd closed the socket it was given on
		 * failure depends on where it failed: close it if still open. */
		if (fcntl(fd, F_GETFD) != -1)
			close(fd);
		free(srv->prefix);
		free(srv);
		return fail(EIO, address, "libmicrohttpd did not start: %s",
		            mhd_message[0] ? mhd_message : "(no message)");
	}
	*out = srv;
	return 0;

fail_free:
	free(srv->prefix);
	free(srv);
	return fail(err, address, "%s", socket_error(err, ebuf, sizeof ebuf));
}

int percpu_metrics_http_port(const struct percpu_metrics_http *srv)
{
	return srv ? srv->port : -EINVAL;
}

void percpu_metrics_http_stop(struct percpu_metrics_http *srv)
{
	if (!srv)
		return;
	/* Closes the listening socket and every connection, joins every
	 * thread: no handler runs after this. */
	MHD_stop_daemon(srv->daemon);
	free(srv->prefix);
	free(srv);
}
