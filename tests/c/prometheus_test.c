/* SPDX-License-Identifier: MIT */
/*
 * prometheus_test -- the named tree's Prometheus dump against Prometheus's
 * own checker, and the registration refusals that keep it valid (issue 16):
 *
 *   - `promtool check metrics` (tools/bootstrap.sh installs it: Debian's
 *     prometheus package) passes a dump that covers counters with and
 *     without "_total", empty descriptions, labelled arrays, constant
 *     labels, gauges with negative sums and escaping, and rejects
 *     hand-made bad expositions (the negative control: the check runs);
 *   - names, label names and label values Prometheus cannot carry, and two
 *     leaves with one Prometheus name, are refused with a reason;
 *   - a scraper dumping in a loop while other threads add and remove
 *     leaves sees only whole lines of leaves that exist (run under TSan in
 *     the tsan leg).
 * PERCPU_PROMTOOL names the promtool to use instead of the one on PATH.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>

#include "harness.h"
#include "stress.h"

/* ---- promtool ------------------------------------------------------------------ */

static const char *promtool_path(void)
{
	static char found[4096];
	const char *env = getenv("PERCPU_PROMTOOL");
	const char *path = getenv("PATH");
	char dirs[4096];
	char *save = NULL;

	if (env && *env)
		return env;
	snprintf(dirs, sizeof(dirs), "%s:/usr/bin:/bin", path ? path : "");
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(found, sizeof(found), "%s/promtool", d);
		if (access(found, X_OK) == 0)
			return found;
	}
	return NULL;
}

static int temp_file(char *name, size_t size, const char *what)
{
	const char *dir = getenv("TEST_TMPDIR");

	snprintf(name, size, "%s/%s_XXXXXX", dir && *dir ? dir : "/tmp", what);
	return mkstemp(name);
}

/*
 * `promtool check metrics < text`: its exit status (0: clean), or -1 if it
 * could not be run (promtool missing is a failure of the test, said
 * clearly); what it printed goes to out.
 */
static int promtool_check(const char *text, char *out, size_t out_size)
{
	const char *tool = promtool_path();
	char in_name[4096], out_name[4096];
	int in_fd, out_fd, status = -1;
	size_t n = strlen(text);
	ssize_t got;
	pid_t pid;

	out[0] = '\0';
	CHECK_MSG(tool != NULL,
	          "promtool not found on PATH (or PERCPU_PROMTOOL): tools/bootstrap.sh "
	          "installs it (Debian package prometheus)");
	if (!tool)
		return -1;
	in_fd = temp_file(in_name, sizeof(in_name), "exposition");
	out_fd = temp_file(out_name, sizeof(out_name), "promtool_out");
	CHECK(in_fd >= 0 && out_fd >= 0);
	if (in_fd < 0 || out_fd < 0)
		return -1;
	CHECK_EQ(write(in_fd, text, n), (ssize_t)n);
	lseek(in_fd, 0, SEEK_SET);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(in_fd, 0);
		dup2(out_fd, 1);
		dup2(out_fd, 2);
		execl(tool, "promtool", "check", "metrics", (char *)NULL);
		_exit(127);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid)
		status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	CHECK_MSG(status != 127, "%s could not be run", tool);
	got = pread(out_fd, out, out_size - 1, 0);
	out[got > 0 ? got : 0] = '\0';
	close(in_fd);
	close(out_fd);
	unlink(in_name);
	unlink(out_name);
	return status == 127 ? -1 : status;
}

/* promtool must reject text, saying `needle`: the check is live. */
static void promtool_rejects(const char *text, const char *needle)
{
	char out[8192];
	int rc = promtool_check(text, out, sizeof(out));

	CHECK_MSG(rc > 0 && strstr(out, needle),
	          "promtool accepted (or did not say '%s' about) a bad exposition: "
	          "exit %d, said:\n%s",
	          needle, rc, out);
}

TEST(promtool_rejects_bad_expositions)
{
	char out[8192];
	int rc;

	/* A positive control first: a correct family passes. */
	rc = promtool_check("# HELP good_total Good.\n# TYPE good_total counter\ngood_total 1\n", out,
	                    sizeof(out));
	CHECK_MSG(rc == 0, "promtool rejected a good exposition: exit %d:\n%s", rc, out);
	/* What the dump used to print. */
	promtool_rejects("# HELP app_requests Requests\n# TYPE app_requests counter\n"
	                 "app_requests 1\n",
	                 "counter metrics should have \"_total\" suffix");
	promtool_rejects("# HELP app_requests_total \n# TYPE app_requests_total counter\n"
	                 "app_requests_total 1\n",
	                 "no help text");
	/* 9lives and _9lives both accepted, the family printed twice. */
	promtool_rejects("# HELP _9lives_total a\n# TYPE _9lives_total counter\n_9lives_total 1\n"
	                 "# HELP _9lives_total b\n# TYPE _9lives_total counter\n_9lives_total 2\n",
	                 "second HELP line for metric name \"_9lives_total\"");
	/* A label value with a raw newline and an unescaped quote. */
	promtool_rejects("# HELP x_total x\n# TYPE x_total counter\nx_total{a=\"b\"c\"} 1\n",
	                 "label value");
}

/* ---- a dump promtool passes ----------------------------------------------------- */

/* A static labelled leaf: in every dump of this binary (its handles stay
 * NULL, reading 0, except inside dump_passes_promtool). */
static counter_u64_t static_ops[3];
static const char *const static_op_values[] = { "get", "put", "delete" };
SYSCTL_COUNTER_U64_ARRAY_LABELED(_prom_static, OID_AUTO, ops, CTLFLAG_RD, static_ops, 3, "op",
                                 static_op_values, "Operations by method");

static counter_u64_t alloc1(int64_t v)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	counter_u64_add(c, v);
	return c;
}

TEST(dump_passes_promtool)
{
	struct sysctl_ctx_list ctx;
	counter_u64_t sent = alloc1(7), req = alloc1(12), quiet = alloc1(0), digit = alloc1(3);
	counter_u64_t conns = alloc1(-3), refs = alloc1(5), codes[4], depth[2];
	static const char *const code_values[] = { "2xx", "3xx", "4xx", "5xx" };
	static const char *const odd_values[] = { "a\\b", "say \"hi\"\nbye" };
	static const char *const service[] = { "service", "api", "zone", "eu-1 \xc3\xa9t\xc3\xa9", NULL };
	char out[8192];
	char *text;
	int rc;

	CHECK_EQ(COUNTER_ARRAY_ALLOC(codes, 4, M_WAITOK), 0);
	CHECK_EQ(COUNTER_ARRAY_ALLOC(depth, 2, M_WAITOK), 0);
	CHECK_EQ(COUNTER_ARRAY_ALLOC(static_ops, 3, M_WAITOK), 0);
	counter_u64_add(static_ops[1], 4);
	for (int i = 0; i < 4; i++)
		counter_u64_add(codes[i], 10 * i + 1);
	counter_u64_add(depth[0], -8);
	counter_u64_add(depth[1], 2);
	sysctl_ctx_init(&ctx);
	CHECK(SYSCTL_ADD_COUNTER_U64(&ctx, "prom.net", OID_AUTO, "sent", CTLFLAG_RD, &sent,
	                             "Packets sent\nover \\ the wire") != NULL);
	CHECK(SYSCTL_ADD_COUNTER_U64(&ctx, "prom.http", OID_AUTO, "requests_total", CTLFLAG_RW, &req,
	                             "Requests") != NULL);
	CHECK(SYSCTL_ADD_COUNTER_U64(&ctx, "prom", OID_AUTO, "quiet", CTLFLAG_RD, &quiet, NULL) != NULL);
	CHECK(SYSCTL_ADD_COUNTER_U64(&ctx, "9lives", OID_AUTO, "n", CTLFLAG_RD, &digit, "") != NULL);
	CHECK(SYSCTL_ADD_COUNTER_U64_ARRAY_LABELED(&ctx, "prom.http", OID_AUTO, "responses",
	                                           CTLFLAG_RD, codes, 4, "code", code_values,
	                                           "Responses by class") != NULL);
	CHECK(counter_sysctl_add_labeled(&ctx, "prom", "conns", CTLFLAG_RD | CTLFLAG_GAUGE, &conns,
	                                 1, "Open connections", service, NULL, NULL) != NULL);
	CHECK(counter_sysctl_add_labeled(&ctx, "prom", "queue_depth", CTLFLAG_RD | CTLFLAG_GAUGE,
	                                 depth, 2, "", service, "queue", odd_values) != NULL);
	CHECK(counter_sysctl_add_labeled(&ctx, "prom", "refs", CTLFLAG_RD | CTLFLAG_GAUGE, &refs, 1,
	                                 "References held", NULL, NULL, NULL) != NULL);
	CHECK(SYSCTL_ADD_COUNTER_U64_ARRAY(&ctx, "prom", OID_AUTO, "slots", CTLFLAG_RD, depth, 2,
	                                   "Slots by index") != NULL);

	text = counter_sysctl_prometheus_string(NULL);
	CHECK(text != NULL);
	if (!text)
		return;
	static const char *const want[] = {
		"# HELP prom_net_sent_total Packets sent\\nover \\\\ the wire\n"
		"# TYPE prom_net_sent_total counter\nprom_net_sent_total 7\n",
		"# TYPE prom_http_requests_total counter\nprom_http_requests_total 12\n",
		"# HELP prom_quiet_total Counter prom.quiet\n",
		"# HELP _9lives_n_total Counter 9lives.n\n",
		"# TYPE prom_http_responses_total counter\n"
		"prom_http_responses_total{code=\"2xx\"} 1\n"
		"prom_http_responses_total{code=\"3xx\"} 11\n"
		"prom_http_responses_total{code=\"4xx\"} 21\n"
		"prom_http_responses_total{code=\"5xx\"} 31\n",
		"# TYPE prom_conns gauge\n"
		"prom_conns{service=\"api\",zone=\"eu-1 \xc3\xa9t\xc3\xa9\"} -3\n",
		"# HELP prom_queue_depth Gauge prom.queue_depth\n# TYPE prom_queue_depth gauge\n"
		"prom_queue_depth{service=\"api\",zone=\"eu-1 \xc3\xa9t\xc3\xa9\",queue=\"a\\\\b\"} -8\n"
		"prom_queue_depth{service=\"api\",zone=\"eu-1 \xc3\xa9t\xc3\xa9\","
		"queue=\"say \\\"hi\\\"\\nbye\"} 2\n",
		"# TYPE prom_refs gauge\nprom_refs 5\n",
		"prom_slots_total{index=\"0\"} 18446744073709551608\n"
		"prom_slots_total{index=\"1\"} 2\n",
		"# HELP prom_static_ops_total Operations by method\n"
		"# TYPE prom_static_ops_total counter\n"
		"prom_static_ops_total{op=\"get\"} 0\n"
		"prom_static_ops_total{op=\"put\"} 4\n"
		"prom_static_ops_total{op=\"delete\"} 0\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
		CHECK_MSG(strstr(text, want[i]), "the dump lacks\n%s\nit is:\n%s", want[i], text);
	rc = promtool_check(text, out, sizeof(out));
	CHECK_MSG(rc == 0, "promtool check metrics: exit %d:\n%s\non:\n%s", rc, out, text);
	free(text);

	/* With a prefix too (no '_' before the digit then). */
	text = counter_sysctl_prometheus_string("app_");
	CHECK(text && strstr(text, "\napp_9lives_n_total 3\n") &&
	      strstr(text, "\napp_prom_refs 5\n"));
	rc = text ? promtool_check(text, out, sizeof(out)) : -1;
	CHECK_MSG(rc == 0, "promtool check metrics (prefix app_): exit %d:\n%s", rc, out);
	free(text);

	/* The gauge flag is listed, and reads stay the raw uint64_t. */
	{
		struct counter_sysctl_info info;
		uint64_t v;
		size_t len = 1;

		CHECK_EQ(counter_sysctl_describe("prom.conns", &info), 0);
		CHECK(info.access & CTLFLAG_GAUGE);
		CHECK_EQ(counter_sysctl_read("prom.conns", &v, &len), 0);
		CHECK(v == (uint64_t)-3);
	}
	CHECK_EQ(sysctl_ctx_free(&ctx), 0);
	counter_u64_free(sent);
	counter_u64_free(req);
	counter_u64_free(quiet);
	counter_u64_free(digit);
	counter_u64_free(conns);
	counter_u64_free(refs);
	COUNTER_ARRAY_FREE(codes, 4);
	COUNTER_ARRAY_FREE(depth, 2);
	COUNTER_ARRAY_FREE(static_ops, 3);
	memset(static_ops, 0, sizeof(static_ops)); /* the leaf reads 0 again */
}

/* ---- bad input ------------------------------------------------------------------ */

/*
 * The add must fail with err and a counter_sysctl_last_error() naming the
 * leaf (`leaf`) and saying `why`.
 */
static bool refused(struct sysctl_oid *oid, int err, const char *leaf, const char *why)
{
	int e = errno;
	const char *msg = counter_sysctl_last_error();

	if (oid) {
		counter_sysctl_remove(leaf);
		printf("# %s was accepted (wanted %s)\n", leaf, why);
		return false;
	}
	if (e != err || !strstr(msg, leaf) || !strstr(msg, why)) {
		printf("# %s: errno %d (wanted %d), message '%s' (wanted '%s')\n", leaf, e, err,
		       msg, why);
		return false;
	}
	return true;
}

static struct sysctl_oid *add_array(const char *name, unsigned access, const char *const *consts,
                                    const char *label, const char *const *values, size_t len)
{
	static counter_u64_t c[4];

	if (!c[0])
		COUNTER_ARRAY_ALLOC(c, 4, M_WAITOK);
	errno = 0;
	return counter_sysctl_add_labeled(NULL, "bad", name, access, c, len, "d", consts, label,
	                                  values);
}

TEST(bad_labels_are_refused_with_a_reason)
{
	const char *const four[] = { "a", "b", "c", "d" };
	const char *const dup[] = { "a", "b", "a", "d" };
	const char *const empty[] = { "a", "", "c", "d" };
	const char *const overlong[] = { "a", "\xc0\xaf", "c", "d" };
	const char *const surrogate[] = { "a", "b", "\xed\xa0\x80", "d" };
	const char *const stray[] = { "a", "b", "c", "\x80" };
	const char *const truncated[] = { "a", "b", "c", "\xe2\x82" };
	const char *const odd[] = { "service", NULL };
	const char *const twice[] = { "k", "1", "k", "2", NULL };
	const char *const clash[] = { "code", "x", NULL };
	const char *const bad_const[] = { "x-y", "1", NULL };
	const char *const bad_const_value[] = { "k", "\xff", NULL };
	const char *const bad_names[] = { "", "1a", "a-b", "a b", "__reserved", "le", "quantile",
		                          "caf\xc3\xa9" };
	counter_u64_t c = alloc1(1);

	for (size_t i = 0; i < sizeof(bad_names) / sizeof(*bad_names); i++) {
		const char *why = i == 0                                ? "empty label name"
		                  : !strcmp(bad_names[i], "__reserved") ? "reserved by Prometheus"
		                  : (!strcmp(bad_names[i], "le") || !strcmp(bad_names[i], "quantile"))
		                          ? "reserved for histograms"
		                          : "is not [A-Za-z_][A-Za-z0-9_]*";

		CHECK_MSG(refused(add_array("a", CTLFLAG_RD, NULL, bad_names[i], four, 4), EINVAL,
		                  "bad.a", why),
		          "label name '%s'", bad_names[i]);
	}
	CHECK(refused(add_array("a", CTLFLAG_RD, NULL, "code", dup, 4), EINVAL, "bad.a",
	              "elements 0 and 2 both have code=\"a\""));
	CHECK(refused(add_array("a", CTLFLAG_RD, NULL, "code", empty, 4), EINVAL, "bad.a",
	              "label code has an empty value (element 1)"));
	CHECK(refused(add_array("a", CTLFLAG_RD, NULL, "code", overlong, 4), EINVAL, "bad.a",
	              "not UTF-8 (element 1)"));
	CHECK(refused(add_array("a", CTLFLAG_RD, NULL, NULL, surrogate, 4), EINVAL, "bad.a",
	              "label index is not UTF-8 (element 2)"));
	CHECK(refused(add_array("a", CTLFLAG_RD, NULL, "code", stray, 4), EINVAL, "bad.a",
	              "not UTF-8 (element 3)"));
	CHECK(refused(add_array("a", CTLFLAG_RD, NULL, "code", truncated, 4), EINVAL, "bad.a",
	              "not UTF-8 (element 3)"));
	CHECK(refused(add_array("a", CTLFLAG_RD, odd, NULL, NULL, 4), EINVAL, "bad.a",
	              "constant label service has no value"));
	CHECK(refused(add_array("a", CTLFLAG_RD, twice, NULL, NULL, 4), EINVAL, "bad.a",
	              "label k given twice"));
	CHECK(refused(add_array("a", CTLFLAG_RD, clash, "code", four, 4), EINVAL, "bad.a",
	              "label code is both constant and the element label"));
	CHECK(refused(add_array("a", CTLFLAG_RD, bad_const, NULL, NULL, 4), EINVAL, "bad.a",
	              "label name 'x-y'"));
	CHECK(refused(add_array("a", CTLFLAG_RD, bad_const_value, NULL, NULL, 4), EINVAL, "bad.a",
	              "the value of label k is not UTF-8"));
	CHECK(refused(add_array("a", CTLFLAG_RD, NULL, "code", four, 1), EINVAL, "bad.a",
	              "element labels on a scalar"));
	errno = 0;
	CHECK(refused(counter_sysctl_add(NULL, "bad", "a", CTLFLAG_RD, &c, 1, "caf\xe9"), EINVAL,
	              "bad.a", "description is not UTF-8"));
	errno = 0;
	CHECK(refused(counter_sysctl_add(NULL, "bad", "a-b", CTLFLAG_RD, &c, 1, ""), EINVAL,
	              "bad.a-b", "byte 0x2d at 5 is not [A-Za-z0-9_.]"));
	errno = 0;
	CHECK(refused(counter_sysctl_add(NULL, "bad..x", "a", CTLFLAG_RD, &c, 1, ""), EINVAL,
	              "bad..x.a", "empty component"));
	errno = 0;
	CHECK(refused(counter_sysctl_add(NULL, "bad", "inflight_total", CTLFLAG_RD | CTLFLAG_GAUGE,
	                                 &c, 1, ""),
	              EINVAL, "bad.inflight_total", "a gauge's name must not end in _total"));

	/* The same leaf with good labels is accepted (the refusals were the labels'). */
	const char *const good_consts[] = { "k", "v", NULL };
	CHECK(add_array("a", CTLFLAG_RD, good_consts, "code", four, 4) != NULL);
	CHECK_EQ(counter_sysctl_last_error()[0], '\0');
	CHECK_EQ(counter_sysctl_remove("bad.a"), 0);
	counter_u64_free(c);
}

static void register_bad_static(void)
{
	static struct sysctl_oid *owner;
	static counter_u64_t c;

	counter_sysctl_register_static(&owner, "_unit", "bad-name", CTLFLAG_RD, &c, 1, "");
}

static void register_colliding_static(void)
{
	static struct sysctl_oid *first, *second;
	static counter_u64_t c;

	counter_sysctl_register_static(&first, "\"\"", "9lives", CTLFLAG_RD, &c, 1, "");
	counter_sysctl_register_static(&second, "\"\"", "_9lives", CTLFLAG_RD, &c, 1, "");
}

/* A static leaf has no caller: its refusal and the reason go to stderr. */
TEST(static_refusals_say_why_on_stderr)
{
	CHECK(harness_warns_with(register_bad_static,
	                         "SYSCTL_COUNTER_U64(_unit, bad-name): not registered: Invalid "
	                         "argument (counter_sysctl: 'unit.bad-name': byte 0x2d at 8 is "
	                         "not [A-Za-z0-9_.]"));
	CHECK(harness_warns_with(register_colliding_static,
	                         "SYSCTL_COUNTER_U64(\"\", _9lives): not registered: File exists "
	                         "(counter_sysctl: _9lives: its Prometheus name _9lives_total is "
	                         "9lives's already)"));
}

static struct sysctl_oid *add1(const char *name, unsigned access, counter_u64_t *c)
{
	errno = 0;
	return counter_sysctl_add(NULL, NULL, name, access, c, 1, "d");
}

/* Two names, one Prometheus name: the second is refused, either order. */
static void collide(const char *first, unsigned a1, const char *second, unsigned a2,
                    const char *metric)
{
	counter_u64_t c = alloc1(1);
	char why[128];

	snprintf(why, sizeof(why), "Prometheus name %s is %s's already", metric, first);
	CHECK_MSG(add1(first, a1, &c) != NULL, "%s refused: %s", first,
	          counter_sysctl_last_error());
	CHECK_MSG(refused(add1(second, a2, &c), EEXIST, second, why), "%s after %s", second, first);
	CHECK_EQ(counter_sysctl_remove(first), 0);
	counter_u64_free(c);
}

TEST(names_with_one_prometheus_name_are_refused)
{
	counter_u64_t c = alloc1(1);
	char *text;

	collide("9lives", CTLFLAG_RD, "_9lives", CTLFLAG_RD, "_9lives_total");
	collide("_9lives", CTLFLAG_RD, "9lives", CTLFLAG_RD, "_9lives_total");
	collide("x", CTLFLAG_RD, "x_total", CTLFLAG_RD, "x_total");
	collide("x_total", CTLFLAG_RD, "x", CTLFLAG_RD, "x_total");
	collide("a.b_c", CTLFLAG_RD, "a_b.c", CTLFLAG_RD, "a_b_c_total");
	collide("g.up", CTLFLAG_RD | CTLFLAG_GAUGE, "g_up", CTLFLAG_RD | CTLFLAG_GAUGE, "g_up");
	/* Same name: taken, whatever the kind. */
	CHECK(add1("same", CTLFLAG_RD, &c) != NULL);
	CHECK(refused(add1("same", CTLFLAG_RD | CTLFLAG_GAUGE, &c), EEXIST, "same", "name is taken"));
	CHECK_EQ(counter_sysctl_remove("same"), 0);

	/* Controls: a gauge x beside a counter x_total is two families, and the
	 * dump of what was accepted passes promtool with each family once. */
	CHECK(add1("9lives", CTLFLAG_RD, &c) != NULL);
	CHECK(add1("y", CTLFLAG_RD | CTLFLAG_GAUGE, &c) != NULL);
	CHECK(add1("y_total", CTLFLAG_RD, &c) != NULL);
	text = counter_sysctl_prometheus_string(NULL);
	CHECK(text != NULL);
	if (text) {
		char out[8192];
		const char *once = strstr(text, "# TYPE _9lives_total counter\n");
		int rc = promtool_check(text, out, sizeof(out));

		CHECK(once && !strstr(once + 1, "# TYPE _9lives_total"));
		CHECK(strstr(text, "# TYPE y gauge\n") && strstr(text, "# TYPE y_total counter\n"));
		CHECK_MSG(rc == 0, "promtool: exit %d:\n%s\non:\n%s", rc, out, text);
		free(text);
	}
	CHECK_EQ(counter_sysctl_remove("9lives"), 0);
	CHECK_EQ(counter_sysctl_remove("y"), 0);
	CHECK_EQ(counter_sysctl_remove("y_total"), 0);
	counter_u64_free(c);
}

/* ---- scraping while the tree changes -------------------------------------------- */

#define RACE_WRITERS 3
#define RACE_SPARE 4                                      /* race.w<t>.n<k>, k < RACE_SPARE: come and go by round */
#define RACE_LEAVES (RACE_WRITERS * (2 + RACE_SPARE) + 1) /* + prom.static.ops */

/* Every leaf the race may register, as the dump must print it. */
struct race_leaf {
	char metric[64];
	char help[64];
	const char *type;
	size_t len;
	char labels[3][96]; /* per sample: "" or "{...}" */
};

static struct race_leaf race_leaves[RACE_LEAVES];
static const char *const race_slots[] = { "a\"q", "b\\s", "c\nn" };
static const char *const race_slots_escaped[] = { "a\\\"q", "b\\\\s", "c\\nn" };

static void race_table(void)
{
	int n = 0;

	for (int t = 0; t < RACE_WRITERS; t++) {
		struct race_leaf *c = &race_leaves[n++], *g = &race_leaves[n++];

		snprintf(c->metric, sizeof(c->metric), "race_w%d_c_total", t);
		snprintf(c->help, sizeof(c->help), "writer %d", t);
		c->type = "counter";
		c->len = 1;
		snprintf(c->labels[0], sizeof(c->labels[0]), "{writer=\"w%d\"}", t);
		snprintf(g->metric, sizeof(g->metric), "race_w%d_g", t);
		snprintf(g->help, sizeof(g->help), "Gauge race.w%d.g", t);
		g->type = "gauge";
		g->len = 3;
		for (int i = 0; i < 3; i++)
			snprintf(g->labels[i], sizeof(g->labels[i]), "{slot=\"%s\"}",
			         race_slots_escaped[i]);
		for (int k = 0; k < RACE_SPARE; k++) {
			struct race_leaf *s = &race_leaves[n++];

			snprintf(s->metric, sizeof(s->metric), "race_w%d_n%d_total", t, k);
			snprintf(s->help, sizeof(s->help), "spare %d", k);
			s->type = "counter";
			s->len = 2;
			snprintf(s->labels[0], sizeof(s->labels[0]), "{index=\"0\"}");
			snprintf(s->labels[1], sizeof(s->labels[1]), "{index=\"1\"}");
		}
	}
	/* The static leaf, there all along. */
	snprintf(race_leaves[n].metric, sizeof(race_leaves[n].metric), "prom_static_ops_total");
	snprintf(race_leaves[n].help, sizeof(race_leaves[n].help), "Operations by method");
	race_leaves[n].type = "counter";
	race_leaves[n].len = 3;
	for (int i = 0; i < 3; i++)
		snprintf(race_leaves[n].labels[i], sizeof(race_leaves[n].labels[i]), "{op=\"%s\"}",
		         static_op_values[i]);
}

/*
 * Check one dump: only race families (and the static leaf), each once,
 * whole (HELP, TYPE, then its samples with exactly the labels it was
 * registered with and a value that parses).  NULL if it is good, else what is wrong (in err).
 */
static const char *check_race_dump(char *text, int *families, char *err, size_t err_size)
{
	bool seen[RACE_LEAVES] = { false };
	const struct race_leaf *cur = NULL;
	size_t next = 0;
	char *save = NULL;
	int state = 0; /* 0: want HELP, 1: want TYPE, 2: samples */

	*families = 0;
#define BAD(...) (snprintf(err, err_size, __VA_ARGS__), err)
	if (*text && text[strlen(text) - 1] != '\n')
		return BAD("the dump does not end in a newline");
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (state == 2 && next == cur->len)
			state = 0;
		if (state == 0) {
			char *sp;

			if (strncmp(line, "# HELP ", 7) || !(sp = strchr(line + 7, ' ')))
				return BAD("'%s': not a HELP line", line);
			*sp = '\0';
			cur = NULL;
			for (int i = 0; i < RACE_LEAVES; i++)
				if (!strcmp(race_leaves[i].metric, line + 7)) {
					if (seen[i])
						return BAD("family %s twice", line + 7);
					seen[i] = true;
					cur = &race_leaves[i];
				}
			if (!cur)
				return BAD("family '%s' was never registered", line + 7);
			if (strcmp(sp + 1, cur->help))
				return BAD("%s: help '%s'", cur->metric, sp + 1);
			state = 1;
		} else if (state == 1) {
			char want[128];

			snprintf(want, sizeof(want), "# TYPE %s %s", cur->metric, cur->type);
			if (strcmp(line, want))
				return BAD("'%s' is not '%s'", line, want);
			state = 2;
			next = 0;
			if (!strncmp(cur->metric, "race_", 5)) /* not the static leaf */
				++*families;
		} else {
			size_t m = strlen(cur->metric), l = strlen(cur->labels[next]);
			char *end;

			if (strncmp(line, cur->metric, m) || strncmp(line + m, cur->labels[next], l) ||
			    line[m + l] != ' ')
				return BAD("'%s': not sample %zu of %s", line, next, cur->metric);
			errno = 0;
			if (*cur->type == 'g')
				(void)strtoll(line + m + l + 1, &end, 10);
			else
				(void)strtoull(line + m + l + 1, &end, 10);
			if (errno || *end || end == line + m + l + 1)
				return BAD("'%s': bad value", line);
			next++;
		}
	}
	if (state == 1 || (state == 2 && next != cur->len))
		return BAD("the last family, %s, is cut short", cur->metric);
	return NULL;
#undef BAD
}

struct race {
	counter_u64_t c[RACE_WRITERS], g[RACE_WRITERS][3], n[RACE_WRITERS][2];
	long rounds;
	int done;           /* writers finished */
	long scrapes;       /* dumps checked */
	long families_seen; /* race families in them */
	int failed;         /* the scraper saw a bad dump */
	char failure[512];  /* the scraper's first bad dump */
	char failed_dump[4096];
};

static void *race_scraper(void *arg)
{
	struct race *r = arg;

	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) || r->scrapes == 0) {
		char *text = counter_sysctl_prometheus_string(NULL);
		char err[512];
		int families = 0;
		const char *bad;

		if (!text) {
			snprintf(r->failure, sizeof(r->failure), "dump failed: %s", strerror(errno));
			__atomic_store_n(&r->failed, 1, __ATOMIC_RELEASE);
			break;
		}
		snprintf(r->failed_dump, sizeof(r->failed_dump), "%s", text);
		bad = check_race_dump(text, &families, err, sizeof(err));
		free(text);
		if (bad) {
			snprintf(r->failure, sizeof(r->failure), "%s", bad);
			__atomic_store_n(&r->failed, 1, __ATOMIC_RELEASE);
			break;
		}
		__atomic_fetch_add(&r->families_seen, families, __ATOMIC_RELEASE);
		__atomic_fetch_add(&r->scrapes, 1, __ATOMIC_RELEASE);
	}
	if (!r->failure[0])
		r->failed_dump[0] = '\0';
	return NULL;
}

static void race_writer(void *arg, int t)
{
	struct race *r = arg;

	for (long round = 0; round < r->rounds; round++) {
		struct sysctl_ctx_list ctx;
		/* The tree copies label strings: these are scribbled over below. */
		char writer_value[8], slot_values[3][8], help[32];
		const char *consts[] = { "writer", writer_value, NULL };
		const char *slots[3];
		char parent[32], full[64];
		int k = (int)(round % RACE_SPARE);

		snprintf(writer_value, sizeof(writer_value), "w%d", t);
		for (int i = 0; i < 3; i++)
			slots[i] = strcpy(slot_values[i], race_slots[i]);
		snprintf(help, sizeof(help), "writer %d", t);
		snprintf(parent, sizeof(parent), "race.w%d", t);
		sysctl_ctx_init(&ctx);
		CHECK(counter_sysctl_add_labeled(&ctx, parent, "c", CTLFLAG_RD, &r->c[t], 1, help,
		                                 consts, NULL, NULL) != NULL);
		CHECK(counter_sysctl_add_labeled(&ctx, parent, "g", CTLFLAG_RD | CTLFLAG_GAUGE, r->g[t],
		                                 3, NULL, NULL, "slot", slots) != NULL);
		snprintf(full, sizeof(full), "n%d", k);
		snprintf(help, sizeof(help), "spare %d", k);
		CHECK(counter_sysctl_add(NULL, parent, full, CTLFLAG_RD, r->n[t], 2, help) != NULL);
		/* A scrape from now on that prints these was not given copies. */
		memset(writer_value, 'X', sizeof(writer_value) - 1);
		memset(slot_values, 'Y', sizeof(slot_values) - 1);
		memset(help, 'Z', sizeof(help) - 1);
		counter_u64_add(r->c[t], 1);
		counter_u64_add(r->g[t][round % 3], round & 1 ? 5 : -7);
		/* The last round of writer 0 waits for a scrape that saw leaves,
		 * so the checks above certainly ran against a changing tree. */
		if (t == 0 && round == r->rounds - 1)
			while (__atomic_load_n(&r->families_seen, __ATOMIC_ACQUIRE) == 0 &&
			       !__atomic_load_n(&r->failed, __ATOMIC_ACQUIRE))
				sched_yield();
		snprintf(full, sizeof(full), "%s.n%d", parent, k);
		CHECK_EQ(counter_sysctl_remove(full), 0);
		CHECK_EQ(sysctl_ctx_free(&ctx), 0);
	}
}

TEST(scrape_while_registering_sees_whole_lines_of_live_leaves)
{
	static struct race r;
	char err[512];
	int families;
	pthread_t scraper;

	race_table();
	/* The checker's own negative controls: it must catch each of these. */
	{
		static const char *const bad[] = {
			"# HELP race_w0_c_tot writer 0\n",   /* torn name */
			"# HELP race_w9_c_total writer 9\n", /* never there */
			"# HELP race_w0_c_total writer 0\n# TYPE race_w0_c_total counter\n",
			"# HELP race_w0_c_total writer 0\n# TYPE race_w0_c_total counter\n"
			"race_w0_c_total{writer=\"w\"} 1\n", /* torn label */
			"# HELP race_w0_c_total writer 0\n# TYPE race_w0_c_total counter\n"
			"race_w0_c_total{writer=\"w0\"} 1\n"
			"# HELP race_w0_c_total writer 0\n# TYPE race_w0_c_total counter\n"
			"race_w0_c_total{writer=\"w0\"} 1\n", /* twice */
			"# HELP race_w0_g Gauge race.w0.g\n# TYPE race_w0_g gauge\n"
			"race_w0_g{slot=\"a\\\"q\"} -1\nrace_w0_g{slot=\"b\\\\s\"} 1", /* cut */
			"# HELP race_w1_n2_total spare 2\n# TYPE race_w1_n2_total counter\n"
			"race_w1_n2_total{index=\"0\"} 1\nrace_w1_n2_total{index=\"1\"} 1x\n",
		};
		char good[] = "# HELP race_w1_n2_total spare 2\n# TYPE race_w1_n2_total counter\n"
			      "race_w1_n2_total{index=\"0\"} 1\nrace_w1_n2_total{index=\"1\"} 2\n";

		for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
			char copy[1024];

			snprintf(copy, sizeof(copy), "%s", bad[i]);
			CHECK_MSG(check_race_dump(copy, &families, err, sizeof(err)) != NULL,
			          "the checker passed bad dump %zu", i);
		}
		CHECK(check_race_dump(good, &families, err, sizeof(err)) == NULL && families == 1);
	}

	r.rounds = harness_scaled(300);
	CHECK_EQ(COUNTER_ARRAY_ALLOC(r.c, RACE_WRITERS, M_WAITOK), 0);
	for (int t = 0; t < RACE_WRITERS; t++) {
		CHECK_EQ(COUNTER_ARRAY_ALLOC(r.g[t], 3, M_WAITOK), 0);
		CHECK_EQ(COUNTER_ARRAY_ALLOC(r.n[t], 2, M_WAITOK), 0);
	}
	pthread_create(&scraper, NULL, race_scraper, &r);
	stress_run_threads(RACE_WRITERS, race_writer, &r);
	__atomic_store_n(&r.done, 1, __ATOMIC_RELEASE);
	pthread_join(scraper, NULL);
	CHECK_MSG(!r.failure[0], "scraper: %s in:\n%s", r.failure, r.failed_dump);
	CHECK(r.families_seen > 0);
	printf("# %ld dumps checked, %ld race families in them\n", r.scrapes, r.families_seen);
	/* All gone again. */
	{
		char *text = counter_sysctl_prometheus_string(NULL);

		CHECK(text && !strstr(text, "race_"));
		free(text);
	}
	COUNTER_ARRAY_FREE(r.c, RACE_WRITERS);
	for (int t = 0; t < RACE_WRITERS; t++) {
		COUNTER_ARRAY_FREE(r.g[t], 3);
		COUNTER_ARRAY_FREE(r.n[t], 2);
	}
}
