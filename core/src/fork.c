/* SPDX-License-Identifier: MIT */
/*
 * fork.c -- the library's one set of pthread_atfork() handlers.
 *
 * Every internal lock is taken in `prepare`, in ONE fixed order -- the
 * order in which the library itself nests them -- and released in the
 * parent and re-initialised or released in the child, in reverse:
 *
 *   1. counter_sysctl's tree lock (a rwlock; readers take the zero lock
 *      under it, and a counter_sysctl_list() visitor may allocate, zero
 *      or switch refs while holding it);
 *   2. pserialize's grace-period lock (held while a grace period waits
 *      out read sections; takes nothing of ours but the fence);
 *   3. percpu_ref's switch lock (nothing of ours is taken under it but
 *      the slab lock, when the worker frees per-CPU words);
 *   4. ops' zero lock (counter_u64_zero / fetch_and_zero; innermost but
 *      for the slab's);
 *   5. the slab's allocator lock (takes nothing of ours but the segment's);
 *   6. the stats segment's lock;
 *   7. the fence's lock (innermost: every facility fences under its own
 *      lock -- pserialize under the grace-period lock -- and nothing is
 *      taken under it).
 *
 * Registering the modules separately would run the prepare handlers in
 * reverse order of registration, i.e. in whatever order the linker ran
 * the constructors: a thread holding the tree lock and waiting for the
 * zero lock, and a fork()ing thread holding the zero lock and waiting for
 * the tree lock, would deadlock the parent.  One registration, one order.
 *
 * Holding them all across fork() means the child inherits every
 * structure they guard in a consistent state (no half-done chunk
 * allocation, tree insertion, fetch_and_zero compensation or percpu_ref
 * fold), and no lock held by a thread that does not exist in the child.
 * docs/fork.md says what the child may do.
 *
 * Modules that a static link may leave out (counter_sysctl.o,
 * pserialize.o, percpu_ref.o) fill a fixed slot from their constructors
 * (percpu_fork_add), so using the slab alone does not drag them in and
 * constructor order does not matter; the slab's constructor registers the
 * handlers (percpu_fork_register).
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "internal.h"
#include "stat_segment.h"

static struct percpu_fork_handlers slots[PERCPU_FORK_SLOTS];

void percpu_fork_add(enum percpu_fork_slot slot, const struct percpu_fork_handlers *h)
{
	slots[slot] = *h;
}

static void prepare(void)
{
	for (int i = 0; i < PERCPU_FORK_SLOTS; i++)
		if (slots[i].prepare)
			slots[i].prepare();
	percpu_ops_fork_prepare();
	percpu_slab_fork_prepare();
	percpu_segment_fork_prepare();
	percpu_fence_fork_prepare();
}

static void parent(void)
{
	percpu_fence_fork_parent();
	percpu_segment_fork_parent();
	percpu_slab_fork_parent();
	percpu_ops_fork_parent();
	for (int i = PERCPU_FORK_SLOTS - 1; i >= 0; i--)
		if (slots[i].parent)
			slots[i].parent();
}

static void child(void)
{
	percpu_fence_fork_child();
	percpu_segment_fork_child();
	percpu_slab_fork_child();
	percpu_ops_fork_child();
	for (int i = PERCPU_FORK_SLOTS - 1; i >= 0; i--)
		if (slots[i].child)
			slots[i].child();
}

static pthread_once_t registered = PTHREAD_ONCE_INIT;

static void register_handlers(void)
{
	if (pthread_atfork(prepare, parent, child) != 0)
		percpu_die("pthread_atfork failed: fork() would not be safe");
}

void percpu_fork_register(void)
{
	pthread_once(&registered, register_handlers);
}
