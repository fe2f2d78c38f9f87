/* SPDX-License-Identifier: MIT */
/*
 * internal.h -- what the library's .c files share and users never see:
 * how misuse is reported.
 *
 * Policy (docs/misuse.md lists every case):
 *   percpu_die()      corruption would follow if we went on (double free
 *                     of a slab object, a count gone negative): print one
 *                     line naming the function and the object, abort().
 *                     In every build: silent corruption is never an option.
 *   percpu_warn()     recoverable misuse the API reports by return value
 *                     anyway: one line on stderr (once per call site).
 *   PERCPU_DEBUG_ASSERT  internal invariants; compiled out with NDEBUG.
 */
#ifndef PERCPU_SRC_INTERNAL_H
#define PERCPU_SRC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

__attribute__((noreturn, format(printf, 1, 2), cold)) void percpu_die(const char *fmt, ...);

__attribute__((format(printf, 1, 2), cold)) void percpu_warn(const char *fmt, ...);

#define percpu_warn_once(...)                                               \
	do {                                                                \
		static bool warned_;                                        \
		if (!__atomic_exchange_n(&warned_, true, __ATOMIC_RELAXED)) \
			percpu_warn(__VA_ARGS__);                           \
	} while (0)

/*
 * Test hooks the library's own sources read (<percpu/test_hooks.h> says
 * what each is for): real only in //core:percpu_testing, compiled with
 * -DPERCPU_TEST_HOOKS.  In every other build they are constants, so the
 * production library has no symbol for them and no branch on one.
 */
#ifdef PERCPU_TEST_HOOKS
#include <percpu/test_hooks.h>
/* The hook's value (a flag, an errno, a function pointer). */
#define PERCPU_TEST_HOOK(hook) (hook)
/* Count an event in a hook's counter. */
#define PERCPU_TEST_COUNT(counter) \
	((void)__atomic_fetch_add(&(counter), 1, __ATOMIC_RELAXED))
#else
#define PERCPU_TEST_HOOK(hook) 0
#define PERCPU_TEST_COUNT(counter) ((void)0)
#endif

#ifdef NDEBUG
#define PERCPU_DEBUG_ASSERT(cond, ...) ((void)0)
#else
#define PERCPU_DEBUG_ASSERT(cond, ...)            \
	do {                                      \
		if (__builtin_expect(!(cond), 0)) \
			percpu_die(__VA_ARGS__);  \
	} while (0)
#endif

/*
 * fork() (fork.c): one pthread_atfork registration takes every internal
 * lock in a fixed order.  The core's own handlers are called directly;
 * modules that a static link may leave out (counter_sysctl, percpu_ref)
 * fill their slot from a constructor, so linking the slab alone does not
 * pull them in.  The slot says where in the order they run.
 */
#define PERCPU_HIDDEN __attribute__((visibility("hidden")))
enum percpu_fork_slot {
	PERCPU_FORK_SYSCTL,     /* outermost: taken first */
	PERCPU_FORK_PSERIALIZE, /* the grace-period lock (a sysctl visitor may trydrain) */
	PERCPU_FORK_REF,
	PERCPU_FORK_SLOTS,
};
struct percpu_fork_handlers {
	void (*prepare)(void);
	void (*parent)(void);
	void (*child)(void);
};
PERCPU_HIDDEN void percpu_fork_register(void);
PERCPU_HIDDEN void percpu_fork_add(enum percpu_fork_slot slot,
                                   const struct percpu_fork_handlers *h);
/* Whether any twin word may have been written yet (ops.c): until then
 * twin words are all 0 and readers leave their pages untouched. */
PERCPU_HIDDEN bool percpu_twins_written(void);
PERCPU_HIDDEN void percpu_ops_fork_prepare(void);
PERCPU_HIDDEN void percpu_ops_fork_parent(void);
PERCPU_HIDDEN void percpu_ops_fork_child(void);
PERCPU_HIDDEN void percpu_fence_fork_prepare(void);
PERCPU_HIDDEN void percpu_fence_fork_parent(void);
PERCPU_HIDDEN void percpu_fence_fork_child(void);
PERCPU_HIDDEN void percpu_slab_fork_prepare(void);
PERCPU_HIDDEN void percpu_slab_fork_parent(void);
PERCPU_HIDDEN void percpu_slab_fork_child(void);

/*
 * The slab's arenas (slab.c): counters' words come from chunks mapped
 * from the stats segment (stat_segment.c), readable by other processes
 * once the tree is published; the other facilities' stay private.
 * percpu_slab_alloc() is PERCPU_SLAB_PRIVATE's.
 */
enum percpu_slab_arena {
	PERCPU_SLAB_PRIVATE,
	PERCPU_SLAB_COUNTERS,
	PERCPU_SLAB_ARENAS,
};
PERCPU_HIDDEN void *percpu_slab_alloc_counter(size_t size, size_t align);

/*
 * pserialize.c: one grace period -- every read section in flight at the
 * call has exited when it returns (pserialize_perform's work; localcount_
 * trydrain's cross-call).  `who` names the caller in abort messages.
 */
PERCPU_HIDDEN void percpu_pserialize_grace(const char *who);
/* Grace periods completed in this process. */
PERCPU_HIDDEN unsigned long percpu_pserialize_graces(void);

#endif /* PERCPU_SRC_INTERNAL_H */
