# SPDX-License-Identifier: MIT
"""CFFI out-of-line API-mode builder for the percpu Python binding.

Declares, for cffi, the same surface the SWIG interface (percpu.i) wraps:
the C shim (percpu_py.h), a few public core calls (topology, paths) and
the test-only stress loops (percpu_stress.h).  API mode: the generated C
includes the real headers, so the C compiler checks every declaration
below against them (a signature that drifts is a build error, not a
crash), and `static const int` constants take their values from the
headers.

Used three ways, all producing the module ``percpu._percpu_cffi``:
  * Bazel (bindings/BUILD): ``cffi_build.py --emit OUT.c``, then
    cc_binary(linkshared=True) compiles it against libpercpu.so.0;
  * setup.py: emit_c_code() into the build directory, then an Extension;
  * by hand: ``python3 bindings/cffi_build.py --emit /tmp/x.c``.

GIL: cffi releases the GIL around every C call, and there is no way to
opt out per function (cffi/recompiler.py).  Hence the C side must never
touch Python (the shim does not), and callbacks come back through the
``extern "Python"`` function below, which takes the GIL itself.
"""

import sys

from cffi import FFI

MODULE_NAME = "percpu._percpu_cffi"

CDEF = r"""
/* ---- constants (values from the headers) ---- */
static const int PERCPU_PY_EV_RELEASE;
static const int PERCPU_PY_EV_CONFIRM_KILL;
static const int PERCPU_PY_EV_CONFIRM_SWITCH;
static const int PERCPU_PY_EV_FREED;
static const int PERCPU_REF_INIT_ATOMIC;
static const int PERCPU_REF_INIT_DEAD;
static const int PERCPU_REF_ALLOW_REINIT;
static const int PERCPU_PY_LEAF_WRITABLE;
static const int PERCPU_PY_LEAF_HIDDEN;
static const int LOCALCOUNT_LIVE;
static const int LOCALCOUNT_TRYDRAINING;
static const int LOCALCOUNT_DRAINING;
static const int LOCALCOUNT_DRAINED;
static const int ERANGE;
static const int EBUSY;
static const int ENOMEM;
static const int ENOENT;

/* ---- opaque owners ---- */
struct percpu_py_counter;
struct percpu_py_counter_array;
struct percpu_py_localcount;
struct percpu_py_ref;
struct percpu_py_ratecheck;
struct percpu_stress_sync;

struct percpu_py_sysctl_entry {
    char *name;
    char *descr;
    unsigned access;
    size_t len;
    int dynamic;
    ...;
};
struct percpu_py_sysctl_list {
    size_t n;
    struct percpu_py_sysctl_entry *entries;
    ...;
};
struct percpu_unit_placement {
    int wanted_node;
    int bind_error;
    int actual_node;
    unsigned pages;
    unsigned pages_on_wanted;
    unsigned pages_unknown;
    ...;
};
struct percpu_slab_stats {
    size_t chunks;
    size_t objects;
    size_t bytes_in_use;
    size_t bytes_capacity;
    size_t units_unplaced;
    ...;
};

/* ---- counters ---- */
int percpu_py_counter_new(struct percpu_py_counter **out);
void percpu_py_counter_free(struct percpu_py_counter *p);
void percpu_py_counter_add(struct percpu_py_counter *p, int64_t v);
uint64_t percpu_py_counter_fetch(struct percpu_py_counter *p);
uint64_t percpu_py_counter_fetch_and_zero(struct percpu_py_counter *p);
int percpu_py_counter_read_cpu(struct percpu_py_counter *p, unsigned cpu,
                               int64_t *out);
int percpu_py_counter_register(struct percpu_py_counter *p, const char *name,
                               int leaf_flags, const char *descr);
int percpu_py_unit_placement(struct percpu_py_counter *p, unsigned cpu,
                             struct percpu_unit_placement *out);

int percpu_py_counter_array_new(struct percpu_py_counter_array **out, size_t n);
void percpu_py_counter_array_free(struct percpu_py_counter_array *p);
int percpu_py_counter_array_add(struct percpu_py_counter_array *p, size_t i,
                                int64_t v);
int percpu_py_counter_array_fetch(struct percpu_py_counter_array *p, size_t i,
                                  uint64_t *out);
void percpu_py_counter_array_fetch_all(struct percpu_py_counter_array *p,
                                       uint64_t *dst);
void percpu_py_counter_array_zero(struct percpu_py_counter_array *p);
int percpu_py_counter_array_register(struct percpu_py_counter_array *p,
                                     const char *name, int leaf_flags,
                                     const char *descr);

/* ---- rate check ---- */
int percpu_py_ratecheck_new(struct percpu_py_ratecheck **out);
void percpu_py_ratecheck_free(struct percpu_py_ratecheck *p);
int64_t percpu_py_ratecheck_check(struct percpu_py_ratecheck *p, int64_t limit);
uint64_t percpu_py_ratecheck_count(struct percpu_py_ratecheck *p);

/* ---- sysctl tree ---- */
int percpu_py_sysctl_len(const char *name);
int percpu_py_sysctl_read(const char *name, uint64_t *values, size_t cap,
                          size_t *len);
int percpu_py_sysctl_zero(const char *name);
int percpu_py_sysctl_read_and_zero(const char *name, uint64_t *values,
                                   size_t cap, size_t *len);
int percpu_py_sysctl_remove(const char *name);
int percpu_py_sysctl_list_new(struct percpu_py_sysctl_list **out,
                              const char *prefix);
void percpu_py_sysctl_list_free(struct percpu_py_sysctl_list *l);
int percpu_py_sysctl_describe(const char *name,
                              struct percpu_py_sysctl_entry *out);
char *percpu_py_sysctl_prometheus(const char *prefix);
void percpu_py_free(void *p);

/* ---- localcount ---- */
int percpu_py_localcount_new(struct percpu_py_localcount **out);
int percpu_py_localcount_free(struct percpu_py_localcount *p);
int percpu_py_localcount_acquire(struct percpu_py_localcount *p);
void percpu_py_localcount_release(struct percpu_py_localcount *p);
int percpu_py_localcount_drain(struct percpu_py_localcount *p);
int percpu_py_localcount_trydrain(struct percpu_py_localcount *p);
int percpu_py_localcount_state(struct percpu_py_localcount *p);
int64_t percpu_py_localcount_refcnt(struct percpu_py_localcount *p);

/* ---- percpu_ref ---- */
int percpu_py_ref_new(struct percpu_py_ref **out, unsigned flags,
                      void (*event)(void *ctx, int event), void *ctx);
void percpu_py_ref_destroy(struct percpu_py_ref *r);
int percpu_py_ref_get(struct percpu_py_ref *r, unsigned long nr);
int percpu_py_ref_put(struct percpu_py_ref *r, unsigned long nr);
bool percpu_py_ref_tryget(struct percpu_py_ref *r, unsigned long nr);
bool percpu_py_ref_tryget_live(struct percpu_py_ref *r);
int percpu_py_ref_kill(struct percpu_py_ref *r, int confirm);
int percpu_py_ref_switch_to_atomic(struct percpu_py_ref *r, int confirm);
int percpu_py_ref_switch_to_atomic_sync(struct percpu_py_ref *r);
int percpu_py_ref_switch_to_percpu(struct percpu_py_ref *r);
int percpu_py_ref_resurrect(struct percpu_py_ref *r);
int percpu_py_ref_reinit(struct percpu_py_ref *r);
bool percpu_py_ref_is_zero(struct percpu_py_ref *r);
bool percpu_py_ref_is_dying(struct percpu_py_ref *r);
unsigned percpu_py_ref_mode(struct percpu_py_ref *r);
unsigned long percpu_py_ref_releases(struct percpu_py_ref *r);

/* C -> Python: the shim's event callback, implemented with
 * @ffi.def_extern() in percpu/_cffi_driver.py. */
extern "Python" void percpu_cffi_event(void *ctx, int event);

/* ---- topology, paths, diagnostics (public core headers) ---- */
unsigned percpu_nr_cpus(void);
bool percpu_nr_cpus_exact(void);
int percpu_current_cpu(void);
bool percpu_rseq_thread_registered(void);
bool percpu_rseq_process_available(void);
bool percpu_fence_available(void);
bool percpu_fast_mode_available(void);
bool percpu_numa_available(void);
int percpu_numa_nr_nodes(void);
int percpu_numa_node_limit(void);
int percpu_numa_node_of_cpu(unsigned cpu);
int percpu_numa_memory_node_of_cpu(unsigned cpu);
void percpu_slab_get_stats(struct percpu_slab_stats *out);
long percpu_py_live_objects(void);
long percpu_py_leaked_objects(void);

/* ---- test-only stress loops (percpu_stress.h) ---- */
static const int PERCPU_STRESS_OUTSTANDING;
static const int PERCPU_STRESS_READY;
static const int PERCPU_STRESS_GO;
static const int PERCPU_STRESS_FAILURES;
static const int PERCPU_STRESS_SHARED;
int percpu_stress_sync_new(struct percpu_stress_sync **out);
void percpu_stress_sync_free(struct percpu_stress_sync *s);
int64_t percpu_stress_sync_get(struct percpu_stress_sync *s, int field);
void percpu_stress_sync_set(struct percpu_stress_sync *s, int field, int64_t v);
uint64_t percpu_stress_counter_add(struct percpu_py_counter *c, uint64_t iters,
                                   int64_t delta);
uint64_t percpu_stress_array_add(struct percpu_py_counter_array *a,
                                 uint64_t iters);
uint64_t percpu_stress_counter_drain_rounds(struct percpu_py_counter *c,
                                            uint64_t rounds);
uint64_t percpu_stress_localcount_cycle(struct percpu_py_localcount *lc,
                                        uint64_t iters);
int percpu_stress_localcount_hold(struct percpu_py_localcount *lc,
                                  struct percpu_stress_sync *s, uint64_t nrefs,
                                  uint64_t spin);
int64_t percpu_stress_localcount_drain(struct percpu_py_localcount *lc,
                                       struct percpu_stress_sync *s);
uint64_t percpu_stress_ref_get_put(struct percpu_py_ref *r, uint64_t iters);
uint64_t percpu_stress_ref_tryget_put(struct percpu_py_ref *r, uint64_t iters,
                                      int live);
int percpu_stress_rendezvous(struct percpu_stress_sync *s, int64_t n,
                             uint64_t timeout_ms);
"""

SOURCE = r"""
#include "percpu_py.h"
#include "percpu_stress.h"
"""


def make_builder(**set_source_kwargs):
    """An FFI builder for MODULE_NAME; kwargs go to set_source()."""
    ffibuilder = FFI()
    ffibuilder.cdef(CDEF)
    ffibuilder.set_source(MODULE_NAME, SOURCE, **set_source_kwargs)
    return ffibuilder


ffibuilder = make_builder()


def main(argv):
    if len(argv) == 3 and argv[1] == "--emit":
        # C source only: the compiler and linker are Bazel's or setup.py's.
        ffibuilder.emit_c_code(argv[2])
        return 0
    print("usage: cffi_build.py --emit OUT.c", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
