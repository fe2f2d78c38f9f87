/*
 * counter_test.c -- counter(9): every function, exactness under
 * oversubscription, signals and migrations, zero racing adds (with a
 * negative control), allocation failure, misuse, the sysctl tree and its
 * Prometheus dump parsed back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>

#include "harness.h"
#include "stress.h"

static int oversubscribed(void)
{
	return 6 * stress_nr_online();
}

/* ---- basics ------------------------------------------------------------ */

TEST(alloc_add_fetch_free)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK | M_ZERO);

	CHECK(c != NULL);
	CHECK_EQ(counter_u64_fetch(c), 0);
	counter_u64_add(c, 1);
	counter_u64_add(c, 41);
	CHECK_EQ(counter_u64_fetch(c), 42);
	counter_u64_add(c, -2);
	CHECK_EQ(counter_u64_fetch(c), 40);
	counter_u64_zero(c);
	CHECK_EQ(counter_u64_fetch(c), 0);
	counter_u64_add(c, 5);
	CHECK_EQ(counter_u64_fetch_and_zero(c), 5);
	CHECK_EQ(counter_u64_fetch(c), 0);
	counter_u64_free(c);
	counter_u64_free(NULL);
}

TEST(wraparound_is_modulo_2_64)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	counter_u64_add(c, -1);
	CHECK(counter_u64_fetch(c) == UINT64_MAX);
	counter_u64_add(c, 2);
	CHECK_EQ(counter_u64_fetch(c), 1);
	counter_u64_free(c);
}

TEST(enter_exit_and_add_protected)
{
	counter_u64_t a = counter_u64_alloc(M_WAITOK), b = counter_u64_alloc(M_WAITOK);

	counter_enter();
	counter_u64_add_protected(a, 3);
	counter_u64_add_protected(b, 4);
	counter_exit();
	CHECK_EQ(counter_u64_fetch(a), 3);
	CHECK_EQ(counter_u64_fetch(b), 4);
	counter_u64_free(a);
	counter_u64_free(b);
}

TEST(arrays_alloc_zero_copy_free)
{
	counter_u64_t a[16];
	uint64_t v[16];

	CHECK_EQ(COUNTER_ARRAY_ALLOC(a, 16, M_WAITOK), 0);
	for (int i = 0; i < 16; i++)
		counter_u64_add(a[i], i * 10);
	COUNTER_ARRAY_COPY(a, v, 16);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(v[i], i * 10);
	COUNTER_ARRAY_ZERO(a, 16);
	COUNTER_ARRAY_COPY(a, v, 16);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(v[i], 0);
	COUNTER_ARRAY_FREE(a, 16);
	for (int i = 0; i < 16; i++)
		CHECK(a[i] == NULL);
}

/* Defined statically; a default-priority constructor may already count. */
COUNTER_U64_DEFINE_EARLY(early_counter);

__attribute__((constructor)) static void count_before_main(void)
{
	counter_u64_add(early_counter, 7);
}

TEST(early_counter_exists_before_main)
{
	CHECK(early_counter != NULL);
	CHECK_EQ(counter_u64_fetch(early_counter), 7);
}

/* ---- exactness ---------------------------------------------------------- */

struct adders {
	counter_u64_t c[64];
	long ops;
};

static void add_spread(void *arg, int index)
{
	struct adders *a = arg;

	for (long i = 0; i < a->ops; i++)
		counter_u64_add(a->c[(index * 7 + i) % 64], 1 + (i & 3));
}

static int64_t expected_spread(long ops, int threads)
{
	int64_t per_thread = 0;

	for (long i = 0; i < ops; i++)
		per_thread += 1 + (i & 3);
	return per_thread * threads;
}

TEST(exact_totals_many_counters_signals_migrations_delays)
{
	struct adders a = { .ops = harness_scaled(40000) };
	uint64_t total = 0;

	CHECK_EQ(COUNTER_ARRAY_ALLOC(a.c, 64, M_WAITOK), 0);
	stress_inject_spins(300);
	stress_migrate_every(32);
	stress_signal_storm_start(50, NULL);
	stress_run_threads(oversubscribed(), add_spread, &a);
	stress_signal_storm_stop();
	stress_migrate_every(0);
	stress_inject_spins(0);
	for (int i = 0; i < 64; i++)
		total += counter_u64_fetch(a.c[i]);
	CHECK_EQ(total, expected_spread(a.ops, oversubscribed()));
	COUNTER_ARRAY_FREE(a.c, 64);
}

/* ---- zero racing adds --------------------------------------------------- */

struct zero_race {
	counter_u64_t c;
	long ops;
	int stop;
	uint64_t taken;
	long zeroes;
	bool naive;
};

/*
 * The negative control: what a remote zero without our protocol does --
 * read each CPU's word, then store 0 into it.  An add committed between
 * the read and the store is wiped out unseen.
 */
__attribute__((no_sanitize("thread")))
static uint64_t naive_fetch_and_zero(counter_u64_t c)
{
	uint64_t taken = 0;

	for (unsigned cpu = 0; cpu < percpu_nr_cpus(); cpu++) {
		volatile int64_t *word = percpu_slab_ptr(c, cpu);
		volatile int64_t *twin = percpu_slab_twin_ptr(c, cpu);
		int64_t v = *word, t = *twin;

		for (volatile int spin = 0; spin < 2000; spin++)
			;
		*word = 0;
		*twin = 0;
		taken += (uint64_t)(v + t);
	}
	return taken;
}

static void *zeroer(void *arg)
{
	struct zero_race *z = arg;

	while (!__atomic_load_n(&z->stop, __ATOMIC_ACQUIRE)) {
		uint64_t got = z->naive ? naive_fetch_and_zero(z->c)
		                        : counter_u64_fetch_and_zero(z->c);

		__atomic_fetch_add(&z->taken, got, __ATOMIC_RELAXED);
		__atomic_fetch_add(&z->zeroes, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void add_ones(void *arg, int index)
{
	struct zero_race *z = arg;

	(void)index;
	for (long i = 0; i < z->ops; i++)
		counter_u64_add(z->c, 1);
}

/* Adds total = what all zeroes took + what is left: nothing lost or doubled. */
static int64_t run_zero_race(bool naive, long ops)
{
	struct zero_race z = { .c = counter_u64_alloc(M_WAITOK), .ops = ops, .naive = naive };
	int threads = oversubscribed();
	pthread_t zeroers[2];
	int64_t error;

	stress_inject_spins(200);
	stress_signal_storm_start(100, NULL);
	for (int i = 0; i < 2; i++)
		pthread_create(&zeroers[i], NULL, zeroer, &z);
	stress_run_threads(threads, add_ones, &z);
	__atomic_store_n(&z.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(zeroers[i], NULL);
	stress_signal_storm_stop();
	stress_inject_spins(0);

	error = (int64_t)(z.taken + counter_u64_fetch(z.c)) - (int64_t)threads * ops;
	printf("# %s zero: %ld zeroes, taken %" PRIu64 ", left %" PRIu64 ", error %" PRId64 "\n",
	       naive ? "naive" : "exact", z.zeroes, z.taken, counter_u64_fetch(z.c), error);
	CHECK(z.zeroes > 0);
	counter_u64_free(z.c);
	return error;
}

TEST(zero_racing_adds_loses_and_doubles_nothing)
{
	CHECK_EQ(run_zero_race(false, harness_scaled(100000)), 0);
}

TEST(negative_control_naive_zero_is_caught)
{
	CHECK_MSG(run_zero_race(true, harness_scaled(100000)) != 0,
	          "a racy zero went unnoticed: the invariant cannot catch a lost count");
}

/* ---- allocation failure and misuse ---------------------------------------- */

TEST(nowait_failure_returns_null_and_leaks_nothing)
{
	struct percpu_slab_stats before, after;
	counter_u64_t a[8];

	percpu_slab_get_stats(&before);
	percpu_slab_inject_failure(0);
	errno = 0;
	CHECK(counter_u64_alloc(M_NOWAIT) == NULL);
	CHECK_EQ(errno, ENOMEM);
	percpu_slab_inject_failure(3); /* the 4th allocation fails */
	CHECK_EQ(COUNTER_ARRAY_ALLOC(a, 8, M_NOWAIT), -ENOMEM);
	for (int i = 0; i < 8; i++)
		CHECK(a[i] == NULL);
	percpu_slab_inject_failure(-1);
	percpu_slab_get_stats(&after);
	CHECK_EQ(after.objects, before.objects);
	CHECK_EQ(after.bytes_in_use, before.bytes_in_use);
}

/* Run fn in a child; true if it died of SIGABRT with `needle` on stderr. */
static bool dies_with_message(void (*fn)(void), const char *needle)
{
	int fds[2], status;
	char buf[1024] = { 0 };
	pid_t pid;

	if (pipe(fds))
		return false;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		fn();
		_exit(0);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	(void)n;
	close(fds[0]);
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, needle);
}

static void waitok_exhausted(void)
{
	percpu_slab_inject_failure(0);
	(void)counter_u64_alloc(M_WAITOK);
}

static void add_protected_outside_enter(void)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	counter_u64_add_protected(c, 1);
}

static void exit_without_enter(void)
{
	counter_exit();
}

static void double_free(void)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	counter_u64_free(c);
	counter_u64_free(c);
}

TEST(misuse_is_loud)
{
	CHECK(dies_with_message(waitok_exhausted, "counter_u64_alloc(M_WAITOK): out of memory"));
	CHECK(dies_with_message(double_free, "not a live allocation"));
#ifndef NDEBUG
	CHECK(dies_with_message(add_protected_outside_enter, "outside counter_enter"));
	CHECK(dies_with_message(exit_without_enter, "counter_exit() without counter_enter()"));
#else
	(void)add_protected_outside_enter;
	(void)exit_without_enter;
#endif
}

/* ---- rate check ------------------------------------------------------------- */

TEST(ratecheck_limits_per_second_and_reports_the_overflow)
{
	struct counter_rate cr = { .cr_rate = counter_u64_alloc(M_WAITOK) };
	int64_t rc;
	int over = 0;

	for (int i = 0; i < 10; i++)
		CHECK_EQ(counter_ratecheck(&cr, 10), 0);
	for (int i = 0; i < 5; i++)
		over += counter_ratecheck(&cr, 10) == -1;
	CHECK_EQ(over, 5);
	usleep(1100 * 1000);
	rc = counter_ratecheck(&cr, 10);
	CHECK_EQ(rc, 15); /* the second that ended saw 15 events */
	CHECK_EQ(counter_ratecheck(&cr, 10), 0);
	usleep(1100 * 1000);
	CHECK_EQ(counter_ratecheck(&cr, 10), 0); /* under the limit: nothing to report */
	counter_u64_free(cr.cr_rate);
}

/* ---- memory --------------------------------------------------------------- */

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

TEST(a_million_counters_cost_8_bytes_per_cpu_each)
{
	enum { N = 1000000 };
	counter_u64_t *c = malloc(N * sizeof(*c));
	struct percpu_slab_stats before, after;
	long rss0 = rss_kib(), grown;
	double per;

	percpu_slab_get_stats(&before);
	for (long i = 0; i < N; i++) {
		c[i] = counter_u64_alloc(M_NOWAIT);
		CHECK(c[i] != NULL);
		counter_u64_add(c[i], 1);
	}
	grown = rss_kib() - rss0 - (long)(N * sizeof(*c) / 1024);
	per = (double)grown * 1024 / N / percpu_nr_cpus();
	printf("# %d counters: RSS +%ld KiB beyond the handle array = %.2f bytes per counter per CPU\n",
	       N, grown, per);
	CHECK_EQ(counter_u64_fetch(c[N - 1]), 1);
#ifndef __SANITIZE_THREAD__
	if (percpu_rseq_thread_registered())
		CHECK_MSG(per < 10.0, "%.2f bytes per counter per CPU", per);
#endif
	for (long i = 0; i < N; i++)
		counter_u64_free(c[i]);
	percpu_slab_get_stats(&after);
	CHECK_EQ(after.objects, before.objects);
	free(c);
}

/* ---- sysctl tree -------------------------------------------------------------- */

static counter_u64_t static_hits;
static counter_u64_t static_codes[3];
SYSCTL_COUNTER_U64(_test_static, OID_AUTO, hits, CTLFLAG_RD, &static_hits,
                   "Hits since start");
SYSCTL_COUNTER_U64_ARRAY(_test_static, OID_AUTO, codes, CTLFLAG_RW, &static_codes[0], 3,
                         "Responses by class");

static uint64_t read_one(const char *name)
{
	uint64_t v = ~0ull;
	size_t len = 1;

	CHECK_EQ(counter_sysctl_read(name, &v, &len), 0);
	CHECK_EQ(len, 1);
	return v;
}

TEST(sysctl_static_leaves_are_registered_at_load)
{
	uint64_t v[3];
	size_t len = 3;
	struct counter_sysctl_info info;

	static_hits = counter_u64_alloc(M_WAITOK);
	CHECK_EQ(COUNTER_ARRAY_ALLOC(static_codes, 3, M_WAITOK), 0);
	counter_u64_add(static_hits, 9);
	counter_u64_add(static_codes[2], 4);
	CHECK_EQ(read_one("test.static.hits"), 9);
	CHECK_EQ(counter_sysctl_read("test.static.codes", v, &len), 0);
	CHECK_EQ(len, 3);
	CHECK(v[0] == 0 && v[1] == 0 && v[2] == 4);
	CHECK_EQ(counter_sysctl_describe("test.static.hits", &info), 0);
	CHECK(!strcmp(info.descr, "Hits since start"));
	CHECK(info.access == CTLFLAG_RD && info.len == 1 && !info.dynamic);

	/* Read-only refuses a write; read-write zeroes every element. */
	CHECK_EQ(counter_sysctl_zero("test.static.hits"), -EPERM);
	CHECK_EQ(read_one("test.static.hits"), 9);
	CHECK_EQ(counter_sysctl_zero("test.static.codes"), 0);
	len = 3;
	CHECK_EQ(counter_sysctl_read("test.static.codes", v, &len), 0);
	CHECK_EQ(v[2], 0);
}

TEST(sysctl_dynamic_leaves_live_and_die_with_their_context)
{
	struct sysctl_ctx_list ctx;
	counter_u64_t sent = counter_u64_alloc(M_WAITOK), drops[4];
	uint64_t v[4];
	size_t len;

	CHECK_EQ(COUNTER_ARRAY_ALLOC(drops, 4, M_WAITOK), 0);
	sysctl_ctx_init(&ctx);
	CHECK(SYSCTL_ADD_COUNTER_U64(&ctx, "net.inet.tcp", OID_AUTO, "sent", CTLFLAG_RW,
	                             &sent, "Segments sent") != NULL);
	CHECK(SYSCTL_ADD_COUNTER_U64_ARRAY(&ctx, "net.inet.tcp", OID_AUTO, "drops", CTLFLAG_RD,
	                                   drops, 4, "Drops by reason") != NULL);
	counter_u64_add(sent, 100);
	counter_u64_add(drops[1], 2);
	CHECK_EQ(read_one("net.inet.tcp.sent"), 100);
	CHECK_EQ(counter_sysctl_zero("net.inet.tcp.sent"), 0);
	CHECK_EQ(read_one("net.inet.tcp.sent"), 0);

	/* Too small a buffer: ENOMEM and the size needed, like sysctl(3). */
	len = 2;
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", v, &len), -ENOMEM);
	CHECK_EQ(len, 4);
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", NULL, &len), -ENOMEM);
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", v, &len), 0);
	CHECK_EQ(v[1], 2);

	/* Names: taken, shadowing, malformed, unknown. */
	errno = 0;
	CHECK(!counter_sysctl_add(&ctx, "net.inet.tcp", "sent", CTLFLAG_RD, &sent, 1, "") &&
	      errno == EEXIST);
	errno = 0;
	CHECK(!counter_sysctl_add(&ctx, "net.inet.tcp.sent", "x", CTLFLAG_RD, &sent, 1, "") &&
	      errno == ENOTDIR);
	errno = 0;
	CHECK(!counter_sysctl_add(&ctx, "net", "inet", CTLFLAG_RD, &sent, 1, "") &&
	      errno == ENOTDIR);
	const char *bad[] = { "a..b", ".a", "a.", "a b", "a-b", "", "caf\xc3\xa9" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		errno = 0;
		CHECK_MSG(!counter_sysctl_add(NULL, NULL, bad[i], CTLFLAG_RD, &sent, 1, "") &&
		          errno == EINVAL, "name '%s' accepted", bad[i]);
	}
	errno = 0;
	CHECK(!counter_sysctl_add(NULL, "x", "y", CTLFLAG_WR, &sent, 1, "") && errno == EINVAL);
	len = 1;
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.nope", v, &len), -ENOENT);
	CHECK_EQ(counter_sysctl_zero("net.inet.tcp.nope"), -ENOENT);

	/* Removal of one leaf, then of the whole context. */
	CHECK_EQ(counter_sysctl_remove("net.inet.tcp.sent"), 0);
	CHECK_EQ(counter_sysctl_remove("net.inet.tcp.sent"), -ENOENT);
	CHECK_EQ(sysctl_ctx_free(&ctx), 0);
	len = 4;
	CHECK_EQ(counter_sysctl_read("net.inet.tcp.drops", v, &len), -ENOENT);
	counter_u64_free(sent);
	COUNTER_ARRAY_FREE(drops, 4);
}

struct listing {
	char names[16][COUNTER_SYSCTL_NAME_MAX];
	int n;
};

static int collect(const struct counter_sysctl_info *info, void *arg)
{
	struct listing *l = arg;

	if (l->n < 16)
		snprintf(l->names[l->n++], COUNTER_SYSCTL_NAME_MAX, "%s", info->name);
	return 0;
}

static int stop_at_first(const struct counter_sysctl_info *info, void *arg)
{
	(void)info;
	++*(int *)arg;
	return 7;
}

TEST(sysctl_lists_in_name_order_by_prefix)
{
	struct sysctl_ctx_list ctx;
	counter_u64_t c = counter_u64_alloc(M_WAITOK);
	struct listing l = { .n = 0 };
	int visits = 0;

	sysctl_ctx_init(&ctx);
	counter_sysctl_add(&ctx, "list.b", "two", CTLFLAG_RD, &c, 1, "");
	counter_sysctl_add(&ctx, "list.a", "one", CTLFLAG_RD, &c, 1, "");
	counter_sysctl_add(&ctx, "list.c", "three", CTLFLAG_RD, &c, 1, "");
	CHECK_EQ(counter_sysctl_list("list.", collect, &l), 0);
	CHECK_EQ(l.n, 3);
	CHECK(!strcmp(l.names[0], "list.a.one") && !strcmp(l.names[1], "list.b.two") &&
	      !strcmp(l.names[2], "list.c.three"));
	CHECK_EQ(counter_sysctl_list("list.", stop_at_first, &visits), 7);
	CHECK_EQ(visits, 1);
	sysctl_ctx_free(&ctx);
	counter_u64_free(c);
}

/* Parse "name{index="i"} value" / "name value" lines back. */
static bool prom_value(const char *text, const char *metric, int index, uint64_t *out)
{
	char want[512];
	const char *p;

	if (index < 0)
		snprintf(want, sizeof(want), "\n%s ", metric);
	else
		snprintf(want, sizeof(want), "\n%s{index=\"%d\"} ", metric, index);
	p = strstr(text, want);
	if (!p)
		return false;
	*out = strtoull(p + strlen(want), NULL, 10);
	return true;
}

TEST(prometheus_dump_parses_back)
{
	struct sysctl_ctx_list ctx;
	counter_u64_t req = counter_u64_alloc(M_WAITOK), lat[2];
	char *text;
	uint64_t v;

	CHECK_EQ(COUNTER_ARRAY_ALLOC(lat, 2, M_WAITOK), 0);
	sysctl_ctx_init(&ctx);
	CHECK(counter_sysctl_add(&ctx, "prom.http", "requests", CTLFLAG_RW, &req, 1,
	                         "Requests served\nwith a \\ in help") != NULL);
	CHECK(counter_sysctl_add(&ctx, "prom.http", "latency_bucket", CTLFLAG_RD, lat, 2,
	                         "Latency buckets") != NULL);
	counter_u64_add(req, 12345);
	counter_u64_add(lat[0], 3);
	counter_u64_add(lat[1], 4);

	text = counter_sysctl_prometheus_string("app_");
	CHECK(text != NULL);
	if (text) {
		CHECK(strstr(text, "# HELP app_prom_http_requests Requests served\\nwith a \\\\ in help\n"));
		CHECK(strstr(text, "# TYPE app_prom_http_requests counter\n"));
		CHECK(prom_value(text, "app_prom_http_requests", -1, &v) && v == 12345);
		CHECK(prom_value(text, "app_prom_http_latency_bucket", 0, &v) && v == 3);
		CHECK(prom_value(text, "app_prom_http_latency_bucket", 1, &v) && v == 4);
		/* Every sample line is "<metric>[{labels}] <integer>". */
		for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
			char *space = strrchr(line, ' ');

			if (line[0] == '#')
				continue;
			CHECK_MSG(space && space[1] && strspn(space + 1, "0123456789") ==
			          strlen(space + 1), "bad sample line '%s'", line);
			for (char *q = line; q < space && *q != '{'; q++)
				CHECK_MSG((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
				          (*q >= '0' && *q <= '9') || *q == '_' || *q == ':',
				          "bad metric name in '%s'", line);
		}
		free(text);
	}
	sysctl_ctx_free(&ctx);
	counter_u64_free(req);
	COUNTER_ARRAY_FREE(lat, 2);
}

/* Registration, removal and reads from many threads at once. */
static void sysctl_churn(void *arg, int index)
{
	counter_u64_t *c = arg;
	char name[64];

	for (int i = 0; i < 200; i++) {
		struct sysctl_ctx_list ctx;
		uint64_t v;
		size_t len = 1;

		sysctl_ctx_init(&ctx);
		snprintf(name, sizeof(name), "t%d", index);
		CHECK(counter_sysctl_add(&ctx, "churn", name, CTLFLAG_RW, c, 1, "") != NULL);
		snprintf(name, sizeof(name), "churn.t%d", index);
		CHECK_EQ(counter_sysctl_read(name, &v, &len), 0);
		free(counter_sysctl_prometheus_string(NULL));
		sysctl_ctx_free(&ctx);
	}
}

TEST(sysctl_tree_is_thread_safe)
{
	counter_u64_t c = counter_u64_alloc(M_WAITOK);

	stress_run_threads(oversubscribed(), sysctl_churn, &c);
	counter_u64_free(c);
}
