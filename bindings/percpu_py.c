/* SPDX-License-Identifier: MIT */
/*
 * bindings/percpu_py.c -- the C shim under the Python bindings (contract
 * and reasons: percpu_py.h).  Compiled into each extension module; all
 * library state (slab, sysctl tree, percpu_ref worker) lives once, in
 * libpercpu.so.0, which both modules link against.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <percpu/stat_reader.h>

#include "percpu_py.h"

static long live_objects;
static long leaked_objects;

static void count_alloc(void)
{
	__atomic_add_fetch(&live_objects, 1, __ATOMIC_RELAXED);
}

static void count_free(void)
{
	__atomic_sub_fetch(&live_objects, 1, __ATOMIC_RELAXED);
}

long percpu_py_live_objects(void)
{
	return __atomic_load_n(&live_objects, __ATOMIC_RELAXED);
}

long percpu_py_leaked_objects(void)
{
	return __atomic_load_n(&leaked_objects, __ATOMIC_RELAXED);
}

void percpu_py_free(void *p)
{
	free(p);
}

/* ---- counters ---------------------------------------------------------- */

int percpu_py_counter_new(struct percpu_py_counter **out)
{
	struct percpu_py_counter *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->c = counter_u64_alloc(M_NOWAIT);
	if (!p->c) {
		free(p);
		return -ENOMEM;
	}
	sysctl_ctx_init(&p->leaves);
	count_alloc();
	*out = p;
	return 0;
}

void percpu_py_counter_free(struct percpu_py_counter *p)
{
	if (!p)
		return;
	/* Names first: a reader of the tree must never reach a freed counter. */
	sysctl_ctx_free(&p->leaves);
	counter_u64_free(p->c);
	free(p);
	count_free();
}

int percpu_py_counter_read_cpu(struct percpu_py_counter *p, unsigned cpu,
                               int64_t *out)
{
	if (cpu >= percpu_nr_cpus())
		return -EINVAL;
	*out = percpu_read_cpu(p->c, cpu);
	return 0;
}

/* The sysctl access word for the shim's leaf flags; 0 for unknown bits. */
static unsigned access_of(int leaf_flags)
{
	if (leaf_flags & ~(PERCPU_PY_LEAF_WRITABLE | PERCPU_PY_LEAF_HIDDEN |
	                   PERCPU_PY_LEAF_GAUGE))
		return 0;
	return ((leaf_flags & PERCPU_PY_LEAF_WRITABLE) ? CTLFLAG_RW : CTLFLAG_RD) |
	       ((leaf_flags & PERCPU_PY_LEAF_HIDDEN) ? CTLFLAG_SKIP : 0) |
	       ((leaf_flags & PERCPU_PY_LEAF_GAUGE) ? CTLFLAG_GAUGE : 0);
}

static int add_leaf(struct sysctl_ctx_list *leaves, const char *name,
                    int leaf_flags, counter_u64_t *c, size_t n, const char *descr,
                    const char *const *const_labels, const char *elem_label,
                    const char *const *elem_values)
{
	unsigned access = access_of(leaf_flags);

	if (!access)
		return -EINVAL;
	if (!counter_sysctl_add_labeled(leaves, NULL, name, access, c, n, descr,
	                                const_labels, elem_label, elem_values))
		return -errno;
	return 0;
}

int percpu_py_counter_register(struct percpu_py_counter *p, const char *name,
                               int leaf_flags, const char *descr,
                               const char *const *const_labels)
{
	return add_leaf(&p->leaves, name, leaf_flags, &p->c, 1, descr,
	                const_labels, NULL, NULL);
}

int percpu_py_counter_array_new(struct percpu_py_counter_array **out, size_t n)
{
	struct percpu_py_counter_array *p;
	int rc;

	*out = NULL;
	if (n == 0 || n > SIZE_MAX / sizeof(counter_u64_t))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->a = calloc(n, sizeof(*p->a));
	if (!p->a) {
		free(p);
		return -ENOMEM;
	}
	rc = counter_u64_array_alloc(p->a, n, M_NOWAIT);
	if (rc) {
		free(p->a);
		free(p);
		return rc;
	}
	p->n = n;
	sysctl_ctx_init(&p->leaves);
	count_alloc();
	*out = p;
	return 0;
}

void percpu_py_counter_array_free(struct percpu_py_counter_array *p)
{
	if (!p)
		return;
	sysctl_ctx_free(&p->leaves);
	counter_u64_array_free(p->a, p->n);
	free(p->a);
	free(p);
	count_free();
}

int percpu_py_counter_array_fetch(struct percpu_py_counter_array *p, size_t i,
                                  uint64_t *out)
{
	if (i >= p->n)
		return -ERANGE;
	*out = counter_u64_fetch(p->a[i]);
	return 0;
}

void percpu_py_counter_array_fetch_all(struct percpu_py_counter_array *p,
                                       uint64_t *dst)
{
	counter_u64_array_copy(p->a, dst, p->n);
}

void percpu_py_counter_array_zero(struct percpu_py_counter_array *p)
{
	counter_u64_array_zero(p->a, p->n);
}

int percpu_py_counter_array_register(struct percpu_py_counter_array *p,
                                     const char *name, int leaf_flags,
                                     const char *descr,
                                     const char *const *const_labels,
                                     const char *elem_label,
                                     const char *const *elem_values)
{
	return add_leaf(&p->leaves, name, leaf_flags, p->a, p->n, descr,
	                const_labels, elem_label, elem_values);
}

/* ---- rate check ---------------------------------------------------------- */

int percpu_py_ratecheck_new(struct percpu_py_ratecheck **out)
{
	struct percpu_py_ratecheck *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->cr.cr_rate = counter_u64_alloc(M_NOWAIT);
	if (!p->cr.cr_rate) {
		free(p);
		return -ENOMEM;
	}
	count_alloc();
	*out = p;
	return 0;
}

void percpu_py_ratecheck_free(struct percpu_py_ratecheck *p)
{
	if (!p)
		return;
	counter_u64_free(p->cr.cr_rate);
	free(p);
	count_free();
}

/* ---- the sysctl tree ----------------------------------------------------- */

int percpu_py_sysctl_len(const char *name)
{
	size_t len = 0;
	int rc = counter_sysctl_read(name, NULL, &len);

	if (rc == -ENOMEM || rc == 0)
		return (int)len;
	return rc;
}

int percpu_py_sysctl_read(const char *name, uint64_t *values, size_t cap,
                          size_t *len)
{
	*len = cap;
	return counter_sysctl_read(name, values, len);
}

int percpu_py_sysctl_read_and_zero(const char *name, uint64_t *values,
                                   size_t cap, size_t *len)
{
	*len = cap;
	return counter_sysctl_read_and_zero(name, values, len);
}

int percpu_py_sysctl_zero(const char *name)
{
	return counter_sysctl_zero(name);
}

int percpu_py_sysctl_remove(const char *name)
{
	return counter_sysctl_remove(name);
}

const char *percpu_py_sysctl_last_error(void)
{
	return counter_sysctl_last_error();
}

static int copy_entry(struct percpu_py_sysctl_entry *e,
                      const struct counter_sysctl_info *info)
{
	e->name = strdup(info->name);
	e->descr = strdup(info->descr ? info->descr : "");
	e->access = info->access;
	e->len = info->len;
	e->dynamic = info->dynamic;
	return e->name && e->descr ? 0 : -ENOMEM;
}

static int list_visit(const struct counter_sysctl_info *info, void *arg)
{
	struct percpu_py_sysctl_list *l = arg;
	struct percpu_py_sysctl_entry *grown;

	/* Called with the tree read-locked: allocate, never call back out. */
	grown = realloc(l->entries, (l->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	l->entries = grown;
	memset(&l->entries[l->n], 0, sizeof(l->entries[l->n]));
	l->n++;
	return copy_entry(&l->entries[l->n - 1], info);
}

int percpu_py_sysctl_list_new(struct percpu_py_sysctl_list **out,
                              const char *prefix)
{
	struct percpu_py_sysctl_list *l = calloc(1, sizeof(*l));
	int rc;

	*out = NULL;
	if (!l)
		return -ENOMEM;
	rc = counter_sysctl_list(prefix, list_visit, l);
	if (rc) {
		percpu_py_sysctl_list_free(l);
		return rc < 0 ? rc : -EIO;
	}
	*out = l;
	return 0;
}

void percpu_py_sysctl_list_free(struct percpu_py_sysctl_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->entries[i].name);
		free(l->entries[i].descr);
	}
	free(l->entries);
	free(l);
}

int percpu_py_sysctl_describe(const char *name, struct percpu_py_sysctl_entry *out)
{
	/* describe()'s pointers die with the leaf; copy under a listing,
	 * which holds the tree lock, instead. */
	struct percpu_py_sysctl_list *l;
	int rc = percpu_py_sysctl_list_new(&l, name);

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->entries[i].name, name) == 0) {
			*out = l->entries[i];
			l->entries[i].name = NULL;
			l->entries[i].descr = NULL;
			rc = 0;
			break;
		}
	}
	percpu_py_sysctl_list_free(l);
	if (rc == -ENOENT) {
		/* Not listed: a CTLFLAG_SKIP leaf (registered from C).  Its
		 * strings live until it is removed; copy them at once. */
		struct counter_sysctl_info info;

		if (counter_sysctl_describe(name, &info) == 0) {
			rc = copy_entry(out, &info);
			if (rc) {
				free(out->name);
				free(out->descr);
				memset(out, 0, sizeof(*out));
			}
		}
	}
	return rc;
}

char *percpu_py_sysctl_prometheus(const char *prefix)
{
	return counter_sysctl_prometheus_string(prefix);
}

/* ---- other processes' published counters ---------------------------------- */

static __thread char stat_error[512];

char *percpu_py_stat_read_json(long pid)
{
	char *json = percpu_stat_read_json(pid, stat_error, sizeof(stat_error));

	if (json)
		stat_error[0] = '\0';
	return json;
}

const char *percpu_py_stat_last_error(void)
{
	return stat_error;
}

/* ---- localcount ----------------------------------------------------------- */

int percpu_py_localcount_new(struct percpu_py_localcount **out)
{
	struct percpu_py_localcount *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	rc = localcount_init(&p->lc);
	if (rc) {
		free(p);
		return rc;
	}
	pthread_mutex_init(&p->interlock, NULL);
	pthread_cond_init(&p->cv, NULL);
	count_alloc();
	*out = p;
	return 0;
}

int percpu_py_localcount_state(struct percpu_py_localcount *p)
{
	/* The library changes lc_state only by compare-and-swap. */
	int state = __atomic_load_n(&p->lc.lc_state, __ATOMIC_ACQUIRE);

	/* A drain() let in is draining, even in its trydrain pre-check or
	 * before localcount_drain() has changed the state: so a concurrent
	 * close() knows someone else drains it. */
	if ((state == LOCALCOUNT_LIVE || state == LOCALCOUNT_TRYDRAINING) &&
	    __atomic_load_n(&p->closed, __ATOMIC_ACQUIRE) == PERCPU_PY_LC_DRAIN)
		return LOCALCOUNT_DRAINING;
	return state;
}

int64_t percpu_py_localcount_refcnt(struct percpu_py_localcount *p)
{
	return localcount_debug_refcnt(&p->lc);
}

/* Let one drain or trydrain in: 0, or -EINVAL if one already was. */
static int begin_drain(struct percpu_py_localcount *p, int which)
{
	int open = PERCPU_PY_LC_OPEN;

	if (!__atomic_compare_exchange_n(&p->closed, &open, which, false,
	                                 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return -EINVAL;
	return 0;
}

static void reopen(struct percpu_py_localcount *p)
{
	__atomic_store_n(&p->closed, PERCPU_PY_LC_OPEN, __ATOMIC_SEQ_CST);
}

int percpu_py_localcount_drain(struct percpu_py_localcount *p)
{
	int rc;

	/* Its trydrain pre-check waits out read sections: not from one. */
	if (pserialize_in_read_section())
		return -EDEADLK;
	rc = begin_drain(p, PERCPU_PY_LC_DRAIN);

	if (rc)
		return rc;
	/*
	 * The exact count first (fenced, with acquires refused while it
	 * decides): a negative one -- which localcount_drain() would abort
	 * on -- is refused here with nothing changed; zero is already final.
	 */
	rc = localcount_trydrain_status(&p->lc);
	if (rc == 0)
		return 0;
	if (rc != -EBUSY) {
		reopen(p);
		return rc;
	}
	pthread_mutex_lock(&p->interlock);
	localcount_drain(&p->lc, &p->cv, &p->interlock);
	pthread_mutex_unlock(&p->interlock);
	return 0;
}

int percpu_py_localcount_trydrain(struct percpu_py_localcount *p)
{
	int rc;

	/* The grace period would wait for this thread's own section. */
	if (pserialize_in_read_section())
		return -EDEADLK;
	rc = begin_drain(p, PERCPU_PY_LC_TRYDRAIN);

	if (rc)
		return rc;
	rc = localcount_trydrain_status(&p->lc);
	if (rc)
		reopen(p); /* still live: a later drain or trydrain may run */
	return rc;
}

int percpu_py_localcount_free(struct percpu_py_localcount *p)
{
	int state;

	if (!p)
		return 0;
	state = percpu_py_localcount_state(p);
	if (state == LOCALCOUNT_LIVE && pserialize_in_read_section()) {
		/*
		 * No grace period from inside a read section.  None is needed:
		 * the owner is gone, so no acquire or release can start, and
		 * the count is still -- an exact zero (drain returns at once,
		 * waiting for nobody) or references that were never released.
		 */
		if (localcount_debug_refcnt(&p->lc) == 0 &&
		    begin_drain(p, PERCPU_PY_LC_DRAIN) == 0) {
			pthread_mutex_lock(&p->interlock);
			localcount_drain(&p->lc, &p->cv, &p->interlock);
			pthread_mutex_unlock(&p->interlock);
			state = LOCALCOUNT_DRAINED;
		}
	} else if (state == LOCALCOUNT_LIVE &&
	           percpu_py_localcount_trydrain(p) == 0) {
		state = LOCALCOUNT_DRAINED;
	}
	if (state != LOCALCOUNT_DRAINED) {
		/* References outstanding (or a count gone negative): a release
		 * could still arrive, so the memory must stay. */
		__atomic_add_fetch(&leaked_objects, 1, __ATOMIC_RELAXED);
		count_free();
		return -EBUSY;
	}
	localcount_fini(&p->lc);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->interlock);
	free(p);
	count_free();
	return 0;
}

/* ---- pserialize ------------------------------------------------------------ */

int percpu_py_pserialize_new(struct percpu_py_pserialize **out)
{
	struct percpu_py_pserialize *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->psz = pserialize_create();
	if (!p->psz) {
		free(p);
		return -ENOMEM;
	}
	count_alloc();
	*out = p;
	return 0;
}

void percpu_py_pserialize_free(struct percpu_py_pserialize *p)
{
	if (!p)
		return;
	pserialize_destroy(p->psz);
	free(p);
	count_free();
}

int percpu_py_pserialize_perform(struct percpu_py_pserialize *p)
{
	if (pserialize_in_read_section())
		return -EDEADLK;
	pserialize_perform(p->psz);
	return 0;
}

/* ---- percpu_ref ---------------------------------------------------------- */

static struct percpu_py_ref *owner_of(struct percpu_ref *ref)
{
	return (struct percpu_py_ref *)ref; /* ref is the first member */
}

static void ref_free(struct percpu_py_ref *r)
{
	percpu_ref_exit(&r->ref);
	r->event(r->ctx, PERCPU_PY_EV_FREED);
	pthread_mutex_destroy(&r->lock);
	free(r);
	count_free();
}

/*
 * The release callback.  Runs on the thread whose put reached zero (any
 * thread, the switch worker included).  Nothing in the library touches
 * the ref after release() returns, so if the owner is already gone this
 * is where it is freed.  `releasing` tells a concurrent destroy() that
 * the free will happen here.
 */
static void ref_release(struct percpu_ref *ref)
{
	struct percpu_py_ref *r = owner_of(ref);
	bool owner_gone;

	/* at_zero first: from here get/put are refused, so by the time
	 * anyone can see the release happened, misuse is reported. */
	pthread_mutex_lock(&r->lock);
	r->releasing = true;
	__atomic_store_n(&r->at_zero, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&r->lock);

	__atomic_add_fetch(&r->releases, 1, __ATOMIC_RELAXED);
	r->event(r->ctx, PERCPU_PY_EV_RELEASE);

	pthread_mutex_lock(&r->lock);
	r->releasing = false;
	owner_gone = r->owner_gone;
	pthread_mutex_unlock(&r->lock);
	if (owner_gone)
		ref_free(r);
}

static void ref_confirm_kill(struct percpu_ref *ref)
{
	struct percpu_py_ref *r = owner_of(ref);

	r->event(r->ctx, PERCPU_PY_EV_CONFIRM_KILL);
}

static void ref_confirm_switch(struct percpu_ref *ref)
{
	struct percpu_py_ref *r = owner_of(ref);

	r->event(r->ctx, PERCPU_PY_EV_CONFIRM_SWITCH);
}

int percpu_py_ref_new(struct percpu_py_ref **out, unsigned flags,
                      percpu_py_event_fn *event, void *ctx)
{
	const unsigned known = PERCPU_REF_INIT_ATOMIC | PERCPU_REF_INIT_DEAD |
	                       PERCPU_REF_ALLOW_REINIT;
	struct percpu_py_ref *r;
	int rc;

	*out = NULL;
	if ((flags & ~known) || !event)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->event = event;
	r->ctx = ctx;
	r->flags = flags;
	/* Born dead: count zero, nothing to get or put until reinit. */
	r->at_zero = !!(flags & PERCPU_REF_INIT_DEAD);
	pthread_mutex_init(&r->lock, NULL);
	rc = percpu_ref_init(&r->ref, ref_release, flags);
	if (rc) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		return rc;
	}
	count_alloc();
	*out = r;
	return 0;
}

void percpu_py_ref_destroy(struct percpu_py_ref *r)
{
	bool free_now, release_will_free;

	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->owner_gone = true;
	free_now = __atomic_load_n(&r->at_zero, __ATOMIC_RELAXED) && !r->releasing;
	release_will_free = r->releasing;
	pthread_mutex_unlock(&r->lock);
	if (free_now) {
		ref_free(r);
		return;
	}
	if (release_will_free)
		return;
	/* The owner still holds the initial reference unless it killed the
	 * ref: kill now.  The release -- here or on another thread -- frees. */
	if (!percpu_ref_is_dying(&r->ref))
		percpu_ref_kill(&r->ref);
}

int percpu_py_ref_kill(struct percpu_py_ref *r, int confirm)
{
	if (percpu_ref_is_dying(&r->ref))
		return -EINVAL;
	percpu_ref_kill_and_confirm(&r->ref, confirm ? ref_confirm_kill : NULL);
	return 0;
}

int percpu_py_ref_switch_to_atomic(struct percpu_py_ref *r, int confirm)
{
	percpu_ref_switch_to_atomic(&r->ref, confirm ? ref_confirm_switch : NULL);
	return 0;
}

int percpu_py_ref_switch_to_atomic_sync(struct percpu_py_ref *r)
{
	percpu_ref_switch_to_atomic_sync(&r->ref);
	return 0;
}

static bool may_go_percpu(const struct percpu_py_ref *r)
{
	/* The library treats INIT_ATOMIC and INIT_DEAD as allowing reinit. */
	return r->flags & (PERCPU_REF_ALLOW_REINIT | PERCPU_REF_INIT_ATOMIC |
	                   PERCPU_REF_INIT_DEAD);
}

int percpu_py_ref_switch_to_percpu(struct percpu_py_ref *r)
{
	if (!may_go_percpu(r))
		return -EINVAL;
	percpu_ref_switch_to_percpu(&r->ref);
	return 0;
}

int percpu_py_ref_resurrect(struct percpu_py_ref *r)
{
	if (!percpu_ref_is_dying(&r->ref))
		return -EINVAL;
	/* A resurrected ref that had reached zero starts a new life. */
	percpu_ref_resurrect(&r->ref);
	__atomic_store_n(&r->at_zero, 0, __ATOMIC_RELAXED);
	return 0;
}

int percpu_py_ref_reinit(struct percpu_py_ref *r)
{
	if (!percpu_ref_is_dying(&r->ref) || !percpu_ref_is_zero(&r->ref))
		return -EBUSY;
	percpu_ref_reinit(&r->ref);
	__atomic_store_n(&r->at_zero, 0, __ATOMIC_RELAXED);
	return 0;
}

bool percpu_py_ref_is_zero(struct percpu_py_ref *r)
{
	return percpu_ref_is_zero(&r->ref);
}

bool percpu_py_ref_is_dying(struct percpu_py_ref *r)
{
	return percpu_ref_is_dying(&r->ref);
}

unsigned percpu_py_ref_mode(struct percpu_py_ref *r)
{
	return (unsigned)(__atomic_load_n(&r->ref.mode, __ATOMIC_RELAXED) &
	                  __PERCPU_REF_ATOMIC_DEAD);
}

unsigned long percpu_py_ref_releases(struct percpu_py_ref *r)
{
	return __atomic_load_n(&r->releases, __ATOMIC_RELAXED);
}

/* ---- topology ------------------------------------------------------------- */

int percpu_py_unit_placement(struct percpu_py_counter *p, unsigned cpu,
                             struct percpu_unit_placement *out)
{
	return percpu_slab_unit_placement(p->c, cpu, out);
}
