/* SPDX-License-Identifier: MIT */
/*
 * bindings/percpu_py.h -- the C shim under both Python bindings.
 *
 * SWIG (percpu.i) and CFFI (cffi_build.py) wrap this header and the
 * public headers it includes, nothing else.  cffi_build.py reads its
 * declarations from this file (and percpu_stress.h): write prototypes,
 * static inline functions, structs, anonymous enums, typedefs and
 * object-like #defines; anything else with a body stops the build.  The shim exists because
 * three things the C API leaves to its caller have no Python spelling:
 *
 *   - an owner object.  A Python object frees its C object when it is
 *     collected or closed.  Counters carry the sysctl context their
 *     leaves belong to, so freeing a counter first removes its names.
 *   - localcount's interlock and condvar.  NetBSD's caller owns them; a
 *     Python caller cannot hold a pthread mutex across calls, so each
 *     localcount here comes with its own pair, and drain() takes the
 *     interlock itself.
 *   - a callback argument.  percpu_ref_func_t receives only the ref; the
 *     shim embeds the ref first in struct percpu_py_ref, so the callback
 *     finds the owner (and the Python callable behind `ctx`) by a cast.
 *
 * Nothing here includes Python.h: CFFI calls every function with the GIL
 * released, so this code must never touch Python.  Callbacks reach Python
 * through `event(ctx, PERCPU_PY_EV_*)`, a function the binding supplies
 * (SWIG: a C trampoline taking the GIL with PyGILState_Ensure; CFFI: an
 * extern "Python" function, which does the same).
 *
 * Errors: functions returning int return 0 or -errno.  The Python layer
 * turns -errno into percpu.PercpuError (an OSError).  Misuse the shim can
 * see cheaply -- the usual ways a Python program would hit one of the C
 * library's aborts -- becomes -EINVAL here instead of abort():
 *
 *   localcount  acquire once a drain has begun or a drain/trydrain
 *               succeeded (decided atomically by localcount_tryacquire,
 *               so for every interleaving with a concurrent drain or
 *               trydrain: a reference the drain counts, or -EINVAL);
 *               drain or trydrain twice or while the other runs; drain
 *               or trydrain of a localcount whose count is negative
 *               (more releases than acquires); drain or trydrain
 *               inside a read section of the calling thread (-EDEADLK:
 *               the grace period would wait for that section)
 *   pserialize  perform inside a read section of the calling thread
 *               (-EDEADLK); read_exit with a value no open read section
 *               of this thread was entered with (-EINVAL)
 *   percpu_ref  get or put on a ref whose count reached zero (released)
 *               or that was created dead; kill of a dying ref;
 *               resurrect of a live ref; reinit of a ref that is not
 *               dead with a zero count (-EBUSY); switch_to_percpu
 *               without PERCPU_REF_ALLOW_REINIT
 *
 * What still aborts, as in C (docs/python.md lists it): a release or put
 * with no matching acquire/get that the checks above cannot see (the
 * per-CPU words hide it until a drain or switch folds them).
 *
 * Ownership of a percpu_ref: the initial reference belongs to the owner
 * (the Python PercpuRef object) and is dropped only by kill().  Destroying
 * the owner kills the ref if it is not dying yet; the memory is freed when
 * the count reaches zero, right after the release event -- from whichever
 * thread drops the last reference, possibly the library's switch worker.
 * References that are never put keep it allocated forever (as in C).
 *
 * Thread context: every function may be called from any thread.  The
 * inline fast paths never block.  Which calls may block is said at each.
 */
#ifndef PERCPU_PY_H
#define PERCPU_PY_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <percpu/counter.h>
#include <percpu/counter_sysctl.h>
#include <percpu/cpu.h>
#include <percpu/fence.h>
#include <percpu/localcount.h>
#include <percpu/numa.h>
#include <percpu/percpu_ref.h>
#include <percpu/pserialize.h>
#include <percpu/slab.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- counters ---------------------------------------------------------- */

struct percpu_py_counter {
	counter_u64_t c;
	struct sysctl_ctx_list leaves; /* sysctl names of this counter */
};

/* A new counter at zero: 0 or -ENOMEM.  May block briefly (slab lock). */
int percpu_py_counter_new(struct percpu_py_counter **out);

/* Remove the counter's sysctl leaves, then free it.  NULL is a no-op. */
void percpu_py_counter_free(struct percpu_py_counter *p);

/* Never blocks, no atomic instruction on the rseq path. */
static inline void percpu_py_counter_add(struct percpu_py_counter *p, int64_t v)
{
	counter_u64_add(p->c, v);
}

/* Snapshot sum, O(possible CPUs).  Never blocks. */
static inline uint64_t percpu_py_counter_fetch(struct percpu_py_counter *p)
{
	return counter_u64_fetch(p->c);
}

/* Exact zero with respect to concurrent adds; returns what was removed. */
static inline uint64_t percpu_py_counter_fetch_and_zero(struct percpu_py_counter *p)
{
	return counter_u64_fetch_and_zero(p->c);
}

/* CPU `cpu`'s share of the sum (primary + twin word): the per-CPU view. */
int percpu_py_counter_read_cpu(struct percpu_py_counter *p, unsigned cpu,
                               int64_t *out);

/*
 * Export the counter as sysctl leaf `name` (dotted).  leaf_flags:
 *   PERCPU_PY_LEAF_WRITABLE  the leaf accepts writes (= zero): CTLFLAG_RW
 *   PERCPU_PY_LEAF_HIDDEN    left out of listings and of the Prometheus
 *                            dump, still read and described by name:
 *                            CTLFLAG_SKIP
 *   PERCPU_PY_LEAF_GAUGE     exported as a gauge (the signed sum):
 *                            CTLFLAG_GAUGE
 * const_labels, elem_label, elem_values: as for counter_sysctl_add_labeled()
 * (NULL: none; elem_* only for an array).  0, or -EINVAL (bad name, label
 * or unknown flag), -EEXIST, -ENOTDIR, -ENOMEM; the reason of a refusal is
 * then in percpu_py_sysctl_last_error() (on this thread).  The leaf goes
 * when the counter is freed, or by percpu_py_sysctl_remove().
 */
#define PERCPU_PY_LEAF_WRITABLE 0x1
#define PERCPU_PY_LEAF_HIDDEN 0x2
#define PERCPU_PY_LEAF_GAUGE 0x4
int percpu_py_counter_register(struct percpu_py_counter *p, const char *name,
                               int leaf_flags, const char *descr,
                               const char *const *const_labels);

struct percpu_py_counter_array {
	size_t n;
	counter_u64_t *a;
	struct sysctl_ctx_list leaves;
};

/* n counters at zero: 0, -EINVAL (n == 0), -ENOMEM. */
int percpu_py_counter_array_new(struct percpu_py_counter_array **out, size_t n);
void percpu_py_counter_array_free(struct percpu_py_counter_array *p);

/* -ERANGE for an index out of range. */
static inline int percpu_py_counter_array_add(struct percpu_py_counter_array *p,
                                              size_t i, int64_t v)
{
	if (i >= p->n)
		return -ERANGE;
	counter_u64_add(p->a[i], v);
	return 0;
}

int percpu_py_counter_array_fetch(struct percpu_py_counter_array *p, size_t i,
                                  uint64_t *out);
/* Fetch all n values into dst[0..n-1]. */
void percpu_py_counter_array_fetch_all(struct percpu_py_counter_array *p,
                                       uint64_t *dst);
void percpu_py_counter_array_zero(struct percpu_py_counter_array *p);
/* One leaf of n values; as percpu_py_counter_register(), and elem_values
 * (NULL, or n strings and a NULL) names element i by label elem_label. */
int percpu_py_counter_array_register(struct percpu_py_counter_array *p,
                                     const char *name, int leaf_flags,
                                     const char *descr,
                                     const char *const *const_labels,
                                     const char *elem_label,
                                     const char *const *elem_values);

/* ---- rate check (counter_ratecheck) ------------------------------------ */

/* A struct counter_rate with its counter: 0 or -ENOMEM. */
struct percpu_py_ratecheck {
	struct counter_rate cr;
};
int percpu_py_ratecheck_new(struct percpu_py_ratecheck **out);
void percpu_py_ratecheck_free(struct percpu_py_ratecheck *p);

/* counter_ratecheck(): 0, -1 (over the limit), or >0 (the count of the
 * second that just ended, which was over the limit).  Never blocks. */
static inline int64_t percpu_py_ratecheck_check(struct percpu_py_ratecheck *p,
                                                int64_t limit)
{
	return counter_ratecheck(&p->cr, limit);
}

/* Events counted in the current second so far (a snapshot). */
static inline uint64_t percpu_py_ratecheck_count(struct percpu_py_ratecheck *p)
{
	return counter_u64_fetch(p->cr.cr_rate);
}

/* ---- the sysctl tree ------------------------------------------------- */

/* Leaf length (1 for a scalar) or -ENOENT. */
int percpu_py_sysctl_len(const char *name);

/*
 * Read a leaf into values[0..cap-1]; *len gets the leaf's length.
 * 0, -ENOENT, -ENOMEM (cap too small; *len says how much is needed).
 */
int percpu_py_sysctl_read(const char *name, uint64_t *values, size_t cap,
                          size_t *len);

/* Write (= zero): 0, -ENOENT, -EPERM (read-only leaf). */
int percpu_py_sysctl_zero(const char *name);

/* Read and zero in one exact step; errors as read and zero. */
int percpu_py_sysctl_read_and_zero(const char *name, uint64_t *values,
                                   size_t cap, size_t *len);

/* Remove a leaf: 0 or -ENOENT. */
int percpu_py_sysctl_remove(const char *name);

/* Why this thread's last refused registration was refused, naming the
 * leaf (counter_sysctl_last_error()); "" if none was. */
const char *percpu_py_sysctl_last_error(void);

/* A copy of the listing, so the caller walks it without the tree lock. */
struct percpu_py_sysctl_entry {
	char *name;
	char *descr;
	unsigned access;
	size_t len;
	int dynamic;
};

struct percpu_py_sysctl_list {
	size_t n;
	struct percpu_py_sysctl_entry *entries;
};

/* Leaves under `prefix` (NULL or "": all), in name order: 0 or -ENOMEM. */
int percpu_py_sysctl_list_new(struct percpu_py_sysctl_list **out,
                              const char *prefix);
void percpu_py_sysctl_list_free(struct percpu_py_sysctl_list *l);

/* The Prometheus text; free with percpu_py_free().  NULL with errno. */
char *percpu_py_sysctl_prometheus(const char *prefix);

/*
 * Another process's published counters (percpu.stat.read()), as the JSON
 * object percpu_stat_read_json() makes (<percpu/stat_reader.h>): free
 * with percpu_py_free().  NULL with errno set (ESRCH, EACCES, ENOENT,
 * ENODATA, ESTALE, EPROTO, EAGAIN, ENOMEM) and the one-line reason, which
 * names the pid, in percpu_py_stat_last_error() (this thread's).
 */
char *percpu_py_stat_read_json(long pid);
const char *percpu_py_stat_last_error(void);

/* Publish the tree to other processes (counter_sysctl_publish()): 0 or
 * -errno, the reason in percpu_py_sysctl_last_error(). */
static inline int percpu_py_sysctl_publish(void)
{
	return counter_sysctl_publish();
}

/* counter_sysctl_published(): 1 or 0. */
static inline int percpu_py_sysctl_published(void)
{
	return counter_sysctl_published();
}

/* One leaf's description: 0 or -ENOENT. */
int percpu_py_sysctl_describe(const char *name, struct percpu_py_sysctl_entry *out);

void percpu_py_free(void *p);

/* ---- localcount ------------------------------------------------------ */

struct percpu_py_localcount {
	struct localcount lc;
	pthread_mutex_t interlock;
	pthread_cond_t cv;
	int closed; /* PERCPU_PY_LC_*: which drain the shim let in (atomic) */
};

/* 0 or -ENOMEM.  May block briefly. */
int percpu_py_localcount_new(struct percpu_py_localcount **out);

/*
 * Free: fini if drained; if still live and unreferenced, trydrain first
 * (which waits out read sections in flight: call it without the GIL).
 * Inside a read section of the calling thread (a garbage collection may
 * run there) no grace period can be waited for; nothing can acquire an
 * object being freed, so the exact drain decides instead, without one.
 * A live localcount with references cannot be freed safely (a release
 * could still arrive): it is left allocated and -EBUSY returned.  Never
 * blocks on references.
 */
int percpu_py_localcount_free(struct percpu_py_localcount *p);

/* closed: 0 none; a trydrain is deciding; a drain began (or either is done). */
enum { PERCPU_PY_LC_OPEN,
       PERCPU_PY_LC_TRYDRAIN,
       PERCPU_PY_LC_DRAIN };

/*
 * 0: a reference taken.  -EINVAL: a drain has begun, or a drain or
 * trydrain succeeded (nothing taken).  One localcount_tryacquire(), which
 * decides in the step that takes the reference, so a concurrent drain()
 * either counts (and waits for) this reference or refuses it -- never an
 * abort.  While a trydrain decides (-EBUSY from the library) it yields
 * and retries: a trydrain never waits for references, so this ends with
 * 0 (the trydrain failed) or -EINVAL (it succeeded).  Never blocks
 * otherwise.
 */
static inline int percpu_py_localcount_acquire(struct percpu_py_localcount *p)
{
	int rc;

	while (__builtin_expect((rc = localcount_tryacquire(&p->lc)) == -EBUSY, 0))
		sched_yield();
	return rc;
}

/* Takes the interlock (briefly) only while a drain runs. */
static inline void percpu_py_localcount_release(struct percpu_py_localcount *p)
{
	localcount_release(&p->lc, &p->cv, &p->interlock);
}

/*
 * Wait until every reference is released; afterwards the localcount is
 * final.  BLOCKS.  -EINVAL if a drain/trydrain already began or the count
 * is negative (more releases than acquires; checked exactly, by a
 * localcount_trydrain_status() first, which waits out read sections in
 * flight).  -EDEADLK, nothing done, inside a read section of the calling
 * thread.  Acquires racing it succeed (and are waited for) or get -EINVAL.
 */
int percpu_py_localcount_drain(struct percpu_py_localcount *p);

/* First waits out every read section in flight (a grace period: it may
 * wait for another Python thread's section -- release the GIL), then:
 * 0: final, no references; -EBUSY: references held, still live (acquire
 * allowed again); -EINVAL as for drain; -EDEADLK, nothing done, inside a
 * read section of the calling thread.  Never blocks on references.
 * Exact with acquires racing it (localcount_trydrain_status). */
int percpu_py_localcount_trydrain(struct percpu_py_localcount *p);

/*
 * Why an acquire cannot slip past a trydrain that already summed (the
 * two-step race: check "not closed", then add, with the GIL released in
 * between): there is no such pair here.  percpu_py_localcount_acquire is
 * one localcount_tryacquire(), whose per-CPU add commits only while the
 * mode word it reads inside the same rseq section says live (a trydrain
 * sets it before its fence), and whose central add is a compare-and-swap
 * refused on a word the trydrain holds -- the decision is the add.  The
 * shim's `closed` flag only orders drain/trydrain among themselves; no
 * acquire reads it.  //tests/c:localcount_test runs a whole trydrain (and
 * drain) inside that one step's window through the library's test hook
 * (shim_acquire_paused_while_a_trydrain_*: the two-step version fails
 * them); both drivers reach the add only through this call, and
 * tests/python/test_pserialize.py parks an acquire between the facade's
 * checks and the call while a trydrain succeeds, on both backends.
 */

/* LOCALCOUNT_LIVE / _TRYDRAINING / _DRAINING / _DRAINED; _DRAINING from
 * the moment drain() is let in (before the library's state changes). */
int percpu_py_localcount_state(struct percpu_py_localcount *p);

/* Racy diagnostic count (localcount_debug_refcnt). */
int64_t percpu_py_localcount_refcnt(struct percpu_py_localcount *p);

/* ---- pserialize ------------------------------------------------------ */

/* One pserialize_t (opaque to Python). */
struct percpu_py_pserialize {
	pserialize_t psz;
};

/* 0 or -ENOMEM. */
int percpu_py_pserialize_new(struct percpu_py_pserialize **out);

/* pserialize_destroy; NULL is a no-op.  The owner frees it only when no
 * perform on it is in flight (the call holds the handle). */
void percpu_py_pserialize_free(struct percpu_py_pserialize *p);

/* pserialize_perform: 0 once every read section in flight (any thread)
 * has exited.  BLOCKS -- on another Python thread's section, which needs
 * the GIL to exit: release it.  -EDEADLK, nothing done, when the calling
 * thread is inside a read section (the C call would abort). */
int percpu_py_pserialize_perform(struct percpu_py_pserialize *p);

/* pserialize_read_enter: the value to give back to read_exit (0 or 1).
 * Nestable; never blocks. */
static inline int percpu_py_read_enter(void)
{
	return pserialize_read_enter();
}

/* pserialize_read_exit(s): 0, or -EINVAL (nothing done) when no read
 * section of this thread is open with value s -- the C call would abort. */
static inline int percpu_py_read_exit(int s)
{
	if ((unsigned)s > 1 || pserialize_read_depth[s] <= 0)
		return -EINVAL;
	pserialize_read_exit(s);
	return 0;
}

/* Diagnostic: the epoch read sections count in (its parity is the value
 * a read_enter now returns); a perform changes it once it has waited out
 * the other parity.  Tests see with it that a perform is past its flip. */
static inline unsigned long percpu_py_read_epoch(void)
{
	return __atomic_load_n(&pserialize_readers.epoch, __ATOMIC_ACQUIRE);
}

/* pserialize_in_read_section(): is the calling thread inside one? */
static inline bool percpu_py_in_read_section(void)
{
	return pserialize_in_read_section();
}

/* ---- percpu_ref ------------------------------------------------------- */

enum {
	PERCPU_PY_EV_RELEASE = 1,        /* the count reached zero */
	PERCPU_PY_EV_CONFIRM_KILL = 2,   /* every CPU sees the ref dead */
	PERCPU_PY_EV_CONFIRM_SWITCH = 3, /* every CPU sees it atomic */
	PERCPU_PY_EV_FREED = 4,          /* last event: ctx is not used again */
};

typedef void percpu_py_event_fn(void *ctx, int event);

struct percpu_py_ref {
	struct percpu_ref ref; /* first: the callbacks cast back */
	percpu_py_event_fn *event;
	void *ctx;
	unsigned flags;         /* percpu_ref_init() flags */
	pthread_mutex_t lock;   /* owner_gone / at_zero handshake */
	bool owner_gone;        /* destroy() ran */
	bool releasing;         /* the release event is running */
	int at_zero;            /* released (or born dead); atomic */
	unsigned long releases; /* release events so far; atomic */
};

/*
 * A new ref (flags: PERCPU_REF_INIT_ATOMIC / _INIT_DEAD / _ALLOW_REINIT),
 * reporting to event(ctx, ...).  0, -EINVAL (unknown flag), -ENOMEM.
 */
int percpu_py_ref_new(struct percpu_py_ref **out, unsigned flags,
                      percpu_py_event_fn *event, void *ctx);

/*
 * The owner lets go: kill if not dying (drops the initial reference); the
 * memory is freed, and FREED reported, once the count is zero -- possibly
 * before this returns.  May block while a previous switch of this ref is
 * in flight (its confirm callback may need the GIL: release it).
 */
void percpu_py_ref_destroy(struct percpu_py_ref *r);

static inline int percpu_py_ref_get(struct percpu_py_ref *r, unsigned long nr)
{
	if (__builtin_expect(__atomic_load_n(&r->at_zero, __ATOMIC_RELAXED), 0))
		return -EINVAL;
	percpu_ref_get_many(&r->ref, nr);
	return 0;
}

/* May run the release event on this thread. */
static inline int percpu_py_ref_put(struct percpu_py_ref *r, unsigned long nr)
{
	if (__builtin_expect(__atomic_load_n(&r->at_zero, __ATOMIC_RELAXED), 0))
		return -EINVAL;
	percpu_ref_put_many(&r->ref, nr);
	return 0;
}

static inline bool percpu_py_ref_tryget(struct percpu_py_ref *r, unsigned long nr)
{
	return percpu_ref_tryget_many(&r->ref, nr);
}

static inline bool percpu_py_ref_tryget_live(struct percpu_py_ref *r)
{
	return percpu_ref_tryget_live(&r->ref);
}

/*
 * Mode switches.  confirm != 0 asks for the CONFIRM_* event.  Each may
 * block while a previous switch of this ref is in flight; _sync blocks
 * until its own switch is confirmed.
 */
int percpu_py_ref_kill(struct percpu_py_ref *r, int confirm);
int percpu_py_ref_switch_to_atomic(struct percpu_py_ref *r, int confirm);
int percpu_py_ref_switch_to_atomic_sync(struct percpu_py_ref *r);
int percpu_py_ref_switch_to_percpu(struct percpu_py_ref *r);
int percpu_py_ref_resurrect(struct percpu_py_ref *r);
int percpu_py_ref_reinit(struct percpu_py_ref *r);

bool percpu_py_ref_is_zero(struct percpu_py_ref *r);
bool percpu_py_ref_is_dying(struct percpu_py_ref *r);
/* The mode bits (0: percpu; __PERCPU_REF_ATOMIC, __PERCPU_REF_DEAD). */
unsigned percpu_py_ref_mode(struct percpu_py_ref *r);
/* Release events so far (every life of the ref). */
unsigned long percpu_py_ref_releases(struct percpu_py_ref *r);

/* ---- topology and paths ------------------------------------------------- */

/* One CPU's unit of the chunk holding the counter's per-CPU words. */
int percpu_py_unit_placement(struct percpu_py_counter *p, unsigned cpu,
                             struct percpu_unit_placement *out);

/* Objects the shim has allocated and not freed, all kinds (leak checks). */
long percpu_py_live_objects(void);
/* Objects left allocated on purpose because freeing was unsafe. */
long percpu_py_leaked_objects(void);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_PY_H */
