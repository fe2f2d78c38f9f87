/* SPDX-License-Identifier: MIT */
/*
 * //exporter:metrics_http_test -- the /metrics server against a real
 * client, curl(1) (one process per request), and, where the test must
 * hold a connection at a chosen point (stop while a request is in
 * flight), raw sockets.  Every check has a negative control that must
 * fail: the body check against a tree changed between the reference dump
 * and the scrape (an add done deterministically in between), the status
 * and header checks against the wrong expectation, the completeness check
 * against a cut body.  No verdict depends on speed: curl's --max-time and
 * the sockets' receive timeouts only keep a broken server from hanging
 * the test.
 */
#define _GNU_SOURCE
#include <percpu/metrics_http.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>

extern char **environ;

static int failures;
static const char *current;
static bool quiet; /* a negative control runs a check that must fail */

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			failures++;                                          \
			if (!quiet) {                                        \
				fprintf(stderr, "FAIL %s: %s:%d: %s: ",      \
				        current, __FILE__, __LINE__, #cond); \
				fprintf(stderr, __VA_ARGS__);                \
				fputc('\n', stderr);                         \
			}                                                    \
		}                                                            \
	} while (0)

static char tmpdir[512];

/* ---- the tree ------------------------------------------------------- */

#define NCOUNTERS 3000 /* a body of a few hundred KB: several writes */
static counter_u64_t counters[NCOUNTERS];
static struct sysctl_ctx_list ctx;

static void tree_setup(void)
{
	sysctl_ctx_init(&ctx);
	for (int i = 0; i < NCOUNTERS; i++) {
		char name[32];
		snprintf(name, sizeof name, "c%04d", i);
		counters[i] = counter_u64_alloc(M_WAITOK);
		counter_u64_add(counters[i], (int64_t)i * 1000003);
		if (!SYSCTL_ADD_COUNTER_U64(&ctx, "httptest.tree", OID_AUTO,
		                            name, CTLFLAG_RD, &counters[i],
		                            "A counter of the HTTP test")) {
			fprintf(stderr, "SYSCTL_ADD_COUNTER_U64(%s): %s\n",
			        name, strerror(errno));
			exit(1);
		}
	}
}

static void tree_teardown(void)
{
	sysctl_ctx_free(&ctx);
	for (int i = 0; i < NCOUNTERS; i++)
		counter_u64_free(counters[i]);
}

/* ---- curl ------------------------------------------------------------ */

struct reply {
	int exit_status; /* curl's */
	int status;      /* HTTP */
	char *headers;
	char *body;
	size_t body_len;
};

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *bigger = realloc(buf, 2 * cap + 1);
			if (!bigger) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* Start curl: `extra` (NULL-terminated) then the URL; files tag.*. */
static pid_t curl_spawn(const char *tag, const char *const *extra,
                        const char *url)
{
	char body[600], headers[600], code[600];
	snprintf(body, sizeof body, "%s/%s.body", tmpdir, tag);
	snprintf(headers, sizeof headers, "%s/%s.headers", tmpdir, tag);
	snprintf(code, sizeof code, "%s/%s.code", tmpdir, tag);
	unlink(body);
	const char *argv[32] = { "curl", "--silent", "--show-error",
		                 "--max-time", "120", "--output",
		                 body, "--dump-header", headers,
		                 "--write-out", "%{http_code}" };
	int argc = 11;
	for (; extra && *extra; extra++)
		argv[argc++] = *extra;
	argv[argc++] = url;
	argv[argc] = NULL;

	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, code,
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	pid_t pid;
	int err = posix_spawnp(&pid, "curl", &fa, NULL, (char *const *)argv,
	                       environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err) {
		fprintf(stderr, "posix_spawnp(curl): %s (is curl installed? "
		                "tools/bootstrap.sh)\n",
		        strerror(err));
		exit(1);
	}
	return pid;
}

static void curl_wait(pid_t pid, const char *tag, struct reply *r)
{
	char path[600];
	int st;
	memset(r, 0, sizeof *r);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	snprintf(path, sizeof path, "%s/%s.code", tmpdir, tag);
	char *code = slurp(path, NULL);
	r->status = code ? atoi(code) : -1;
	free(code);
	snprintf(path, sizeof path, "%s/%s.headers", tmpdir, tag);
	r->headers = slurp(path, NULL);
	snprintf(path, sizeof path, "%s/%s.body", tmpdir, tag);
	r->body = slurp(path, &r->body_len);
}

static void curl(const char *tag, const char *const *extra, const char *url,
                 struct reply *r)
{
	curl_wait(curl_spawn(tag, extra, url), tag, r);
}

static void reply_free(struct reply *r)
{
	free(r->headers);
	free(r->body);
}

/* The value of header `name` (case-insensitive), trimmed, into buf; or "". */
static const char *header(const struct reply *r, const char *name,
                          char *buf, size_t len)
{
	size_t nlen = strlen(name);
	buf[0] = '\0';
	for (const char *line = r->headers; line && *line;) {
		const char *end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (*v == ' ')
				v++;
			size_t vlen = (size_t)(end - v);
			while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
				vlen--;
			if (vlen >= len)
				vlen = len - 1;
			memcpy(buf, v, vlen);
			buf[vlen] = '\0';
		}
		line = *end ? end + 1 : end;
	}
	return buf;
}

/* The checks, each a predicate so that its negative control can run it. */
static bool body_is(const struct reply *r, const char *want)
{
	return r->body && r->body_len == strlen(want) &&
	       memcmp(r->body, want, r->body_len) == 0;
}

static bool header_is(const struct reply *r, const char *name,
                      const char *want)
{
	char buf[256];
	return strcmp(header(r, name, buf, sizeof buf), want) == 0;
}

/* Complete: the body is as long as the Content-Length said. */
static bool complete(const struct reply *r)
{
	char buf[64];
	header(r, "Content-Length", buf, sizeof buf);
	return buf[0] && r->body && strtoull(buf, NULL, 10) == r->body_len;
}

static char url_metrics[128], url_other[128];

/* ---- tests -------------------------------------------------------------- */

static struct percpu_metrics_http *start_local(void)
{
	struct percpu_metrics_http *srv = NULL;
	int err = percpu_metrics_http_start(&srv, "127.0.0.1:0", NULL);
	if (err) {
		fprintf(stderr, "start: %d %s\n", err,
		        percpu_metrics_http_error());
		exit(1);
	}
	int port = percpu_metrics_http_port(srv);
	snprintf(url_metrics, sizeof url_metrics,
	         "http://127.0.0.1:%d/metrics", port);
	snprintf(url_other, sizeof url_other, "http://127.0.0.1:%d/other",
	         port);
	return srv;
}

static void get_serves_the_tree_exactly(void)
{
	current = __func__;
	struct percpu_metrics_http *srv = start_local();
	CHECK(percpu_metrics_http_port(srv) > 0, "port %d",
	      percpu_metrics_http_port(srv));
	char *ref = counter_sysctl_prometheus_string(NULL);
	/* (the sample's name may gain a suffix, "_total": not checked) */
	const char *sample = ref ? strstr(ref, "\nhttptest_tree_c2999") : NULL;
	CHECK(sample && strstr(sample + 1, " 2999008997\n") ==
	                        strchr(sample + 1, ' '),
	      "the reference dump lacks a known sample");
	struct reply r;
	curl("get", NULL, url_metrics, &r);
	CHECK(r.exit_status == 0, "curl exit %d", r.exit_status);
	CHECK(r.status == 200, "status %d", r.status);
	CHECK(header_is(&r, "Content-Type", PERCPU_METRICS_HTTP_CONTENT_TYPE),
	      "headers:\n%s", r.headers);
	CHECK(complete(&r), "Content-Length vs %zu bytes", r.body_len);
	CHECK(body_is(&r, ref), "body (%zu bytes) differs from the dump",
	      r.body_len);
	/* Negative controls: each check fails on the wrong expectation. */
	CHECK(!header_is(&r, "Content-Type", "text/plain"),
	      "the content-type check accepts a wrong type");
	CHECK(r.status != 404, "control");
	reply_free(&r);

	/* The tree changes between the reference dump and the scrape (one
	 * add, done here, in between): the body check must fail. */
	counter_u64_add(counters[7], 1);
	curl("get2", NULL, url_metrics, &r);
	CHECK(r.status == 200, "status %d", r.status);
	CHECK(!body_is(&r, ref),
	      "the body check passed on a tree changed after the dump");
	free(ref);
	ref = counter_sysctl_prometheus_string(NULL);
	CHECK(body_is(&r, ref), "the body is not the dump after the add");
	reply_free(&r);
	free(ref);

	/* A query string is ignored; a prefix is applied. */
	percpu_metrics_http_stop(srv);
	struct percpu_metrics_http_options opt = { .prefix = "myapp_" };
	CHECK(percpu_metrics_http_start(&srv, "127.0.0.1:0", &opt) == 0, "%s",
	      percpu_metrics_http_error());
	char url[160];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics?x=1",
	         percpu_metrics_http_port(srv));
	ref = counter_sysctl_prometheus_string("myapp_");
	curl("prefix", NULL, url, &r);
	CHECK(r.status == 200, "status %d", r.status);
	CHECK(body_is(&r, ref), "prefixed body differs");
	CHECK(strstr(r.body ? r.body : "", "\nmyapp_httptest_tree_c0001"),
	      "no prefixed sample");
	reply_free(&r);
	free(ref);
	percpu_metrics_http_stop(srv);
}

static void head_post_and_other_paths(void)
{
	current = __func__;
	struct percpu_metrics_http *srv = start_local();
	char *ref = counter_sysctl_prometheus_string(NULL);
	char len[32];
	snprintf(len, sizeof len, "%zu", strlen(ref));
	struct reply r;

	const char *const head[] = { "--head", NULL };
	curl("head", head, url_metrics, &r);
	CHECK(r.exit_status == 0, "curl exit %d", r.exit_status);
	CHECK(r.status == 200, "HEAD status %d", r.status);
	CHECK(header_is(&r, "Content-Type", PERCPU_METRICS_HTTP_CONTENT_TYPE),
	      "HEAD headers:\n%s", r.headers);
	CHECK(header_is(&r, "Content-Length", len), "HEAD headers:\n%s",
	      r.headers);
	reply_free(&r);

	const char *const post[] = { "--data", "x=1", NULL };
	curl("post", post, url_metrics, &r);
	CHECK(r.status == 405, "POST status %d", r.status);
	CHECK(header_is(&r, "Allow", "GET, HEAD"), "POST headers:\n%s",
	      r.headers);
	CHECK(!header_is(&r, "Allow", "GET"), "control: Allow check");
	CHECK(r.status != 200, "control");
	CHECK(r.body && !strstr(r.body, "# TYPE"), "a 405 carries the dump");
	reply_free(&r);

	const char *const put[] = { "--request", "PUT", NULL };
	curl("put", put, url_metrics, &r);
	CHECK(r.status == 405, "PUT status %d", r.status);
	reply_free(&r);

	curl("other", NULL, url_other, &r);
	CHECK(r.status == 404, "/other status %d", r.status);
	CHECK(r.body && !strstr(r.body, "# TYPE"), "a 404 carries the dump");
	reply_free(&r);
	curl("other_post", post, url_other, &r);
	CHECK(r.status == 404, "POST /other status %d", r.status);
	reply_free(&r);
	char url[160];
	snprintf(url, sizeof url, "%s/", url_metrics);
	curl("slash", NULL, url, &r);
	CHECK(r.status == 404, "/metrics/ status %d", r.status);
	reply_free(&r);
	free(ref);
	percpu_metrics_http_stop(srv);
}

#define SCRAPERS 8

static int raw_connect(int port, int rcvbuf);

static void concurrent_scrapes_get_complete_bodies(void)
{
	current = __func__;
	struct percpu_metrics_http *srv = start_local();
	char *ref = counter_sysctl_prometheus_string(NULL);
	pid_t pids[SCRAPERS];
	char tags[SCRAPERS][16];
	/* A client that sent half a request and stalls: with one thread per
	 * connection it holds up nobody (a server serving one connection at a
	 * time would never answer the scrapers, and curl's --max-time would
	 * fail them). */
	int stalled = raw_connect(percpu_metrics_http_port(srv), 0);
	CHECK(stalled >= 0, "connect: %s", strerror(errno));
	const char half[] = "GET /metrics HTTP/1.1\r\nHo";
	CHECK(send(stalled, half, sizeof half - 1, MSG_NOSIGNAL) > 0, "send");
	/* All started before any is waited for. */
	for (int i = 0; i < SCRAPERS; i++) {
		snprintf(tags[i], sizeof tags[i], "conc%d", i);
		pids[i] = curl_spawn(tags[i], NULL, url_metrics);
	}
	for (int i = 0; i < SCRAPERS; i++) {
		struct reply r;
		curl_wait(pids[i], tags[i], &r);
		CHECK(r.exit_status == 0, "scraper %d: curl exit %d", i,
		      r.exit_status);
		CHECK(r.status == 200, "scraper %d: status %d", i, r.status);
		CHECK(complete(&r), "scraper %d: incomplete (%zu bytes)", i,
		      r.body_len);
		CHECK(body_is(&r, ref), "scraper %d: body differs", i);
		if (i == 0 && r.body_len > 0) {
			/* Control: a cut body fails both checks. */
			r.body_len--;
			CHECK(!complete(&r), "control: cut body is complete");
			CHECK(!body_is(&r, ref), "control: cut body matches");
		}
		reply_free(&r);
	}
	close(stalled);
	free(ref);
	percpu_metrics_http_stop(srv);
}

static void expect_start_error(const char *address,
                               const struct percpu_metrics_http_options *opt,
                               int want, const char *message_part)
{
	struct percpu_metrics_http *srv = (void *)&srv; /* must become NULL */
	int err = percpu_metrics_http_start(&srv, address, opt);
	const char *msg = percpu_metrics_http_error();
	CHECK(err == -want, "%s: %d, want %d (%s)", address, err, -want, msg);
	CHECK(srv == NULL, "%s: *out not NULL", address);
	char head[200];
	snprintf(head, sizeof head, "percpu_metrics_http_start(%s): ",
	         address ? address : "NULL");
	CHECK(strncmp(msg, head, strlen(head)) == 0 &&
	              strstr(msg, message_part),
	      "%s: message \"%s\", want \"%s...%s...\"", address, msg, head,
	      message_part);
	if (err == 0)
		percpu_metrics_http_stop(srv);
}

static void a_port_in_use_is_a_clear_error(void)
{
	current = __func__;
	struct percpu_metrics_http *srv = start_local();
	int port = percpu_metrics_http_port(srv);
	char address[64];
	snprintf(address, sizeof address, "127.0.0.1:%d", port);
	expect_start_error(address, NULL, EADDRINUSE, "address already in use");
	/* Control: once the first server is stopped, the same address
	 * starts (the error was the port in use, and stop freed it). */
	percpu_metrics_http_stop(srv);
	srv = NULL;
	int err = percpu_metrics_http_start(&srv, address, NULL);
	CHECK(err == 0, "restart on %s: %d %s", address, err,
	      percpu_metrics_http_error());
	CHECK(percpu_metrics_http_error()[0] == '\0',
	      "a successful start leaves an error message");
	percpu_metrics_http_stop(srv);
}

static void bad_arguments_are_clear_errors(void)
{
	current = __func__;
	CHECK(percpu_metrics_http_start(NULL, "127.0.0.1:0", NULL) == -EINVAL,
	      "NULL out");
	CHECK(strstr(percpu_metrics_http_error(), "out is NULL"), "%s",
	      percpu_metrics_http_error());
	expect_start_error(NULL, NULL, EINVAL, "no address given");
	expect_start_error("localhost:9100", NULL, EINVAL,
	                   "not a numeric IPv4 address");
	expect_start_error("127.0.0.1", NULL, EINVAL, "expected HOST:PORT");
	expect_start_error("127.0.0.1:65536", NULL, EINVAL,
	                   "the port is not a number 0..65535");
	expect_start_error("127.0.0.1:", NULL, EINVAL, "the port is not");
	expect_start_error("127.0.0.1:80x", NULL, EINVAL, "the port is not");
	expect_start_error("[::1", NULL, EINVAL, "expected [IPv6]:PORT");
	expect_start_error("::1:9100", NULL, EINVAL,
	                   "an IPv6 address goes in brackets");
	expect_start_error("[127.0.0.1]:0", NULL, EINVAL,
	                   "not a numeric IPv6 address");
	expect_start_error("192.0.2.1:0", NULL, EADDRNOTAVAIL,
	                   "address not available");
	struct percpu_metrics_http_options bad = { .prefix = "9lives_" };
	expect_start_error("127.0.0.1:0", &bad, EINVAL,
	                   "prefix \"9lives_\" is not the start");
	/* Control: the checker rejects a wrong errno and a wrong message. */
	int before = failures;
	quiet = true;
	expect_start_error("127.0.0.1", NULL, ERANGE, "expected HOST:PORT");
	expect_start_error("127.0.0.1", NULL, EINVAL, "something else");
	quiet = false;
	CHECK(failures == before + 2, "the error checker accepts wrong errors");
	failures = before;
	percpu_metrics_http_stop(NULL);
	CHECK(percpu_metrics_http_port(NULL) == -EINVAL, "port(NULL)");
}

static void ipv6_loopback(void)
{
	current = __func__;
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6,
		                     .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool have = probe >= 0 &&
	            bind(probe, (struct sockaddr *)&sin6, sizeof sin6) == 0;
	if (probe >= 0)
		close(probe);
	if (!have) {
		printf("skip %s: no IPv6 loopback here\n", __func__);
		return;
	}
	struct percpu_metrics_http *srv;
	int err = percpu_metrics_http_start(&srv, "[::1]:0", NULL);
	CHECK(err == 0, "%s", percpu_metrics_http_error());
	if (err)
		return;
	char url[128];
	snprintf(url, sizeof url, "http://[::1]:%d/metrics",
	         percpu_metrics_http_port(srv));
	char *ref = counter_sysctl_prometheus_string(NULL);
	struct reply r;
	curl("v6", NULL, url, &r);
	CHECK(r.status == 200 && body_is(&r, ref), "status %d", r.status);
	reply_free(&r);
	free(ref);
	percpu_metrics_http_stop(srv);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int raw_connect(int port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	struct timeval tv = { .tv_sec = 60 }; /* against a hang only */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in sin = { .sin_family = AF_INET,
		                   .sin_port = htons((uint16_t)port),
		                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read to EOF or error: 1 closed (EOF/reset), 0 timed out. */
static int read_until_closed(int fd, size_t *total)
{
	char buf[4096];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n > 0) {
			*total += (size_t)n;
			continue;
		}
		if (n == 0 || errno == ECONNRESET)
			return 1;
		if (errno == EINTR)
			continue;
		return 0;
	}
}

/* Bytes the kernel may buffer on the sending side: tcp_wmem's maximum. */
static size_t tcp_wmem_max(void)
{
	unsigned long lo, def, max = 0;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
	if (f) {
		if (fscanf(f, "%lu %lu %lu", &lo, &def, &max) != 3)
			max = 0;
		fclose(f);
	}
	return max ? max : 4u << 20;
}

static void stop_with_requests_in_flight_is_clean(void)
{
	current = __func__;
	/* A body larger than the server's socket can buffer (twice
	 * tcp_wmem's maximum; each sample line is over 30 bytes), so that
	 * the response is still being sent when stop comes: one array leaf
	 * whose elements all name the same counter. */
	size_t big_len = 2 * tcp_wmem_max() / 30 + 1000;
	counter_u64_t *big = malloc(big_len * sizeof *big);
	struct sysctl_ctx_list big_ctx;
	sysctl_ctx_init(&big_ctx);
	CHECK(big != NULL, "malloc");
	if (!big)
		return;
	for (size_t i = 0; i < big_len; i++)
		big[i] = counters[1];
	CHECK(SYSCTL_ADD_COUNTER_U64_ARRAY(&big_ctx, "httptest", OID_AUTO,
	                                   "big", CTLFLAG_RD, big, big_len,
	                                   "Many samples") != NULL,
	      "add big: %s", strerror(errno));
	int fds_before = count_fds();
	struct percpu_metrics_http *srv = start_local();
	int port = percpu_metrics_http_port(srv);
	char *ref = counter_sysctl_prometheus_string(NULL);

	/* One connection mid-request: its thread waits for the rest. */
	int half = raw_connect(port, 0);
	CHECK(half >= 0, "connect: %s", strerror(errno));
	const char partial[] = "GET /metr";
	CHECK(send(half, partial, sizeof partial - 1, MSG_NOSIGNAL) > 0,
	      "send");
	/* One mid-response: the status line has arrived, the rest of the
	 * body is unread (a small receive buffer holds the server back). */
	int slow = raw_connect(port, 4096);
	CHECK(slow >= 0, "connect: %s", strerror(errno));
	const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(send(slow, req, sizeof req - 1, MSG_NOSIGNAL) ==
	              (ssize_t)sizeof req - 1,
	      "send");
	char status[13] = { 0 };
	CHECK(recv(slow, status, 12, MSG_WAITALL) == 12 &&
	              strcmp(status, "HTTP/1.1 200") == 0,
	      "status line \"%s\"", status);

	percpu_metrics_http_stop(srv); /* returns: every thread joined */

	size_t got = 12, ignored = 0;
	CHECK(read_until_closed(slow, &got) == 1,
	      "the mid-response connection was not closed by stop");
	CHECK(got < strlen(ref),
	      "the whole response arrived before stop (%zu bytes): not in "
	      "flight",
	      got);
	CHECK(read_until_closed(half, &ignored) == 1,
	      "the mid-request connection was not closed by stop");
	close(half);
	close(slow);
	CHECK(count_fds() == fds_before, "fds: %d before start, %d after stop",
	      fds_before, count_fds());
	/* The port is free: nothing listens there any more. */
	int again = raw_connect(port, 0);
	CHECK(again < 0 && errno == ECONNREFUSED,
	      "connect after stop: %d (%s)", again, strerror(errno));
	if (again >= 0)
		close(again);
	free(ref);
	sysctl_ctx_free(&big_ctx);
	free(big);
}

int main(void)
{
	const char *t = getenv("TEST_TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s", t ? t : "/tmp");
	tree_setup();
	get_serves_the_tree_exactly();
	head_post_and_other_paths();
	concurrent_scrapes_get_complete_bodies();
	a_port_in_use_is_a_clear_error();
	bad_arguments_are_clear_errors();
	ipv6_loopback();
	stop_with_requests_in_flight_is_clean();
	tree_teardown();
	printf("%s\n", failures ? "FAILED" : "all passed");
	return failures ? 1 : 0;
}
