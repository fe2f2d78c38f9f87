/* SPDX-License-Identifier: MIT */
/*
 * bindings/percpu.i -- the SWIG binding (swig -python -builtin).
 *
 * Thin on purpose: object lifetimes, checks and callbacks live in the C
 * shim (percpu_py.h); the Pythonic API lives in python/percpu/.  This
 * file only says how each call crosses into C:
 *
 *   - GIL policy (M2Crypto's pattern): the module is threaded, but every
 *     wrapper KEEPS the GIL (%nothreadallow) -- releasing and re-taking it
 *     costs more than add/get/put themselves, and with several threads it
 *     turns every call into a GIL hand-off.  Calls that block or run long
 *     opt in with %threadallow: drain, the percpu_ref mode switches (which
 *     may wait for a switch whose confirm callback needs the GIL -- keeping
 *     it there would deadlock), the ref's destructor (it kills), the
 *     Prometheus dump, and the stress loops.
 *   - errors: a negative status becomes the facade's exception class,
 *     registered at import with set_error_class() (percpu.PercpuError, an
 *     OSError carrying errno), so both bindings raise the same class.
 *     -ERANGE becomes IndexError.
 *   - callbacks: the shim calls percpu_swig_event(ctx, event) from any
 *     thread, GIL held or not; it takes the GIL with PyGILState_Ensure
 *     (not SWIG_PYTHON_THREAD_BEGIN_BLOCK, which compiles to nothing
 *     under -nothreads) and never lets an exception escape into C.
 */
%module(threads="1") percpu_swig
%nothreadblock;
%nothreadallow;

%{
#include "percpu_py.h"
#include "percpu_stress.h"

#include <limits.h>
#include <string.h>

typedef int percpu_py_status;

static PyObject *percpu_swig_error_class;
/* Constructors return NULL on failure; the reason travels here. */
static __thread int percpu_swig_ctor_err;

static void percpu_swig_raise(int rc)
{
	PyObject *cls = percpu_swig_error_class ? percpu_swig_error_class
	                                        : PyExc_OSError;
	PyObject *exc_args;

	if (rc == -ERANGE) {
		PyErr_SetString(PyExc_IndexError, "index out of range");
		return;
	}
	exc_args = Py_BuildValue("(is)", -rc, strerror(-rc));
	if (exc_args) {
		PyErr_SetObject(cls, exc_args);
		Py_DECREF(exc_args);
	}
}

static int percpu_swig_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
	return Py_IsFinalizing();
#else
	return _Py_IsFinalizing();
#endif
}

/* The shim's event callback: ctx is the Python dispatcher, one reference
 * owned by the ref until FREED. */
static void percpu_swig_event(void *ctx, int event)
{
	PyGILState_STATE st;
	PyObject *res;

	/* A thread that takes the GIL during finalisation is terminated by
	 * CPython; the library's worker must not be. */
	if (percpu_swig_finalizing())
		return;
	st = PyGILState_Ensure();
	res = PyObject_CallFunction((PyObject *)ctx, "i", event);
	if (!res)
		PyErr_WriteUnraisable((PyObject *)ctx);
	else
		Py_DECREF(res);
	if (event == PERCPU_PY_EV_FREED)
		Py_DECREF((PyObject *)ctx);
	PyGILState_Release(st);
}
%}

%include <stdint.i>

/* Accept anything with __index__ (numpy integers), not only int. */
%typemap(in) int64_t {
	long long v_;

	if (PyLong_Check($input)) {
		v_ = PyLong_AsLongLong($input);
	} else {
		PyObject *i_ = PyNumber_Index($input);

		if (!i_)
			SWIG_fail;
		v_ = PyLong_AsLongLong(i_);
		Py_DECREF(i_);
	}
	if (v_ == -1 && PyErr_Occurred())
		SWIG_fail;
	$1 = (int64_t)v_;
}

/* The same for the unsigned parameters (counts, indexes, CPUs): a
 * negative value is an OverflowError, as cffi reports it. */
%define PERCPU_SWIG_UNSIGNED_IN(TYPE, MAX)
%typemap(in) TYPE {
	unsigned long long v_;

	if (PyLong_Check($input)) {
		v_ = PyLong_AsUnsignedLongLong($input);
	} else {
		PyObject *i_ = PyNumber_Index($input);

		if (!i_)
			SWIG_fail;
		v_ = PyLong_AsUnsignedLongLong(i_);
		Py_DECREF(i_);
	}
	if (v_ == (unsigned long long)-1 && PyErr_Occurred())
		SWIG_fail;
	if (v_ > (MAX)) {
		PyErr_SetString(PyExc_OverflowError, "value out of range");
		SWIG_fail;
	}
	$1 = (TYPE)v_;
}
%enddef
PERCPU_SWIG_UNSIGNED_IN(unsigned long, ULONG_MAX)
PERCPU_SWIG_UNSIGNED_IN(size_t, SIZE_MAX)
PERCPU_SWIG_UNSIGNED_IN(uint64_t, UINT64_MAX)
PERCPU_SWIG_UNSIGNED_IN(unsigned, UINT_MAX)
PERCPU_SWIG_UNSIGNED_IN(unsigned int, UINT_MAX)

/* Label lists: None (NULL), or a tuple or list of str, passed on as a
 * NULL-terminated array of their UTF-8 (kept alive by the str objects,
 * which the sequence holds for the call).  The facade checks the types;
 * anything else is a TypeError here. */
%typemap(in) const char *const *const_labels, const char *const *elem_values {
	$1 = NULL;
	if ($input != Py_None) {
		Py_ssize_t n_;
		const char **v_;

		if (!PyTuple_Check($input) && !PyList_Check($input)) {
			PyErr_SetString(PyExc_TypeError, "a tuple or list of str");
			SWIG_fail;
		}
		n_ = PySequence_Fast_GET_SIZE($input);
		v_ = calloc((size_t)n_ + 1, sizeof(*v_));
		if (!v_) {
			PyErr_NoMemory();
			SWIG_fail;
		}
		$1 = ($1_ltype)v_;
		for (Py_ssize_t i_ = 0; i_ < n_; i_++) {
			PyObject *o_ = PySequence_Fast_GET_ITEM($input, i_);

			if (!PyUnicode_Check(o_)) {
				PyErr_SetString(PyExc_TypeError, "a tuple or list of str");
				SWIG_fail;
			}
			v_[i_] = PyUnicode_AsUTF8(o_);
			if (!v_[i_])
				SWIG_fail;
		}
	}
}
%typemap(freearg) const char *const *const_labels, const char *const *elem_values {
	free((void *)$1);
}

typedef int percpu_py_status;
%typemap(out) percpu_py_status {
	if ($1 < 0) {
		percpu_swig_raise($1);
		SWIG_fail;
	}
	$result = SWIG_Py_Void();
}

/* Constants the facade needs, with their values from the headers. */
%constant int EV_RELEASE = PERCPU_PY_EV_RELEASE;
%constant int EV_CONFIRM_KILL = PERCPU_PY_EV_CONFIRM_KILL;
%constant int EV_CONFIRM_SWITCH = PERCPU_PY_EV_CONFIRM_SWITCH;
%constant int EV_FREED = PERCPU_PY_EV_FREED;
%constant int REF_INIT_ATOMIC = PERCPU_REF_INIT_ATOMIC;
%constant int REF_INIT_DEAD = PERCPU_REF_INIT_DEAD;
%constant int REF_ALLOW_REINIT = PERCPU_REF_ALLOW_REINIT;
%constant int LEAF_WRITABLE = PERCPU_PY_LEAF_WRITABLE;
%constant int LEAF_HIDDEN = PERCPU_PY_LEAF_HIDDEN;
%constant int LEAF_GAUGE = PERCPU_PY_LEAF_GAUGE;
%constant int LOCALCOUNT_LIVE = LOCALCOUNT_LIVE;
%constant int LOCALCOUNT_TRYDRAINING = LOCALCOUNT_TRYDRAINING;
%constant int LOCALCOUNT_DRAINING = LOCALCOUNT_DRAINING;
%constant int LOCALCOUNT_DRAINED = LOCALCOUNT_DRAINED;
%constant int STRESS_OUTSTANDING = PERCPU_STRESS_OUTSTANDING;
%constant int STRESS_READY = PERCPU_STRESS_READY;
%constant int STRESS_GO = PERCPU_STRESS_GO;
%constant int STRESS_FAILURES = PERCPU_STRESS_FAILURES;
%constant int STRESS_SHARED = PERCPU_STRESS_SHARED;

/*
 * Docstrings and signatures.  SWIG's autodoc writes each wrapper's
 * signature from its C declaration, "add(self, n=1)"; %init below turns
 * that into CPython's convention, "add($self, n=1, /)\n--\n\n" (the
 * wrappers take positional arguments only), so inspect.signature() and
 * help() work on every method and function -- also on the per-instance
 * fast paths the facade stores on its objects as they are (Counter.add,
 * LocalCount's acquire and release, PercpuRef's get/put/tryget/
 * tryget_live), whose text is given here; name their parameters as the
 * facade does.  Docs live in the method tables: nothing per call.
 */
%feature("autodoc", "0");
%feature("docstring") percpu_py_counter::x_add
	"Add n (default 1) on the calling CPU.  Never blocks; keeps the GIL.";
%feature("docstring") percpu_py_localcount::x_acquire
	"Take a reference (PercpuError EINVAL once a drain began or succeeded).";
%feature("docstring") percpu_py_localcount::x_release
	"Drop a reference (on any thread).  Takes the drain's lock briefly "
	"during a drain; otherwise never blocks.";
%feature("docstring") percpu_py_ref::x_get
	"Take n references; the caller holds one already.  Never blocks.  "
	"PercpuError(EINVAL) on a ref whose count reached zero.";
%feature("docstring") percpu_py_ref::x_put
	"Drop n references; may run the release callback on this thread.";
%feature("docstring") percpu_py_ref::x_tryget
	"Take n references unless the count is zero; True if taken.";
%feature("docstring") percpu_py_ref::x_tryget_live
	"Take a reference unless the ref is dying or zero; True if taken.";

%{
/*
 * SWIG writes "name(self, a, b=1) -> T" or "\nname(self, a)\ntext\n":
 * make it "name($self, a, b=1, /)\n--\n\n" and the text (or, with none,
 * the autodoc line itself, which names the C return type).  Once, at
 * import; the strings live as long as the process (the module is never
 * unloaded: -z nodelete).
 */
static void percpu_swig_signatures(PyMethodDef *m, int method)
{
	for (; m && m->ml_name; m++) {
		const char *doc = m->ml_doc, *args, *close, *text;
		size_t n = strlen(m->ml_name), size;
		char *sig;

		if (!doc)
			continue;
		if (doc[0] == '\n')
			doc++;
		m->ml_doc = doc;
		if (strncmp(doc, m->ml_name, n) || doc[n] != '(' ||
		    !(close = strchr(doc + n, ')')))
			continue;
		args = doc + n + 1;
		text = strchr(close, '\n');
		text = text && text[1] ? text + 1 : doc;
		size = n + strlen(text) + (size_t)(close - args) + 16;
		sig = malloc(size);
		if (!sig)
			continue;
		snprintf(sig, size, "%s(%s%.*s%s)\n--\n\n%s", m->ml_name,
		         method ? "$" : "", (int)(close - args), args,
		         close > args ? ", /" : "", text);
		m->ml_doc = sig;
	}
}
%}
/* Before the types are made ready: they keep pointers to these tables
 * (SWIG -builtin names them SwigPyBuiltin__<struct>_methods). */
%init %{
	percpu_swig_signatures(SwigMethods, 0);
	percpu_swig_signatures(SwigPyBuiltin__percpu_py_counter_methods, 1);
	percpu_swig_signatures(SwigPyBuiltin__percpu_py_counter_array_methods, 1);
	percpu_swig_signatures(SwigPyBuiltin__percpu_py_ratecheck_methods, 1);
	percpu_swig_signatures(SwigPyBuiltin__percpu_py_localcount_methods, 1);
	percpu_swig_signatures(SwigPyBuiltin__percpu_py_ref_methods, 1);
	percpu_swig_signatures(SwigPyBuiltin__percpu_py_pserialize_methods, 1);
	percpu_swig_signatures(SwigPyBuiltin__percpu_stress_sync_methods, 1);
%}

/* Module-level C functions keep their C name less the prefix, as the
 * drivers expect (_drivers.driver_name): percpu_nr_cpus is nr_cpus,
 * percpu_py_live_objects live_objects, percpu_stress_rendezvous
 * stress_rendezvous.  (This file's own percpu_swig_* helpers keep theirs.) */
%rename("%(regex:/^percpu_(py_)?(?!swig_)(.*)/\\2/)s", %$isfunction, %$not %$ismember) "";

/* Methods are written x_name (so SWIG's helper percpu_py_counter_x_add
 * cannot collide with the shim's percpu_py_counter_add) and exposed as
 * name. */
%rename("%(strip:[x_])s", %$isfunction, %$ismember) "";

%define PERCPU_SWIG_CTOR(TYPE)
%exception TYPE::TYPE {
	percpu_swig_ctor_err = 0;
	$action
	if (!result) {
		if (!PyErr_Occurred())
			percpu_swig_raise(percpu_swig_ctor_err ? percpu_swig_ctor_err
			                                       : -ENOMEM);
		SWIG_fail;
	}
}
%enddef

%inline %{
/* The facade registers its exception class here at import. */
void set_error_class(PyObject *cls)
{
	Py_XINCREF(cls);
	Py_XDECREF(percpu_swig_error_class);
	percpu_swig_error_class = cls;
}
%}

/* ---- Counter ----------------------------------------------------------- */

%rename(Counter) percpu_py_counter;
PERCPU_SWIG_CTOR(percpu_py_counter)
%exception percpu_py_counter::x_read_cpu { $action if (!result) SWIG_fail; }
%exception percpu_py_counter::x_unit_placement { $action if (!result) SWIG_fail; }
struct percpu_py_counter {};
%extend percpu_py_counter {
	percpu_py_counter() {
		struct percpu_py_counter *p;

		percpu_swig_ctor_err = percpu_py_counter_new(&p);
		return p;
	}
	~percpu_py_counter() { percpu_py_counter_free($self); }
	void x_add(int64_t n = 1) { percpu_py_counter_add($self, n); }
	uint64_t x_fetch() { return percpu_py_counter_fetch($self); }
	uint64_t x_fetch_and_zero() { return percpu_py_counter_fetch_and_zero($self); }
	PyObject *x_read_cpu(unsigned cpu) {
		int64_t v;
		int rc = percpu_py_counter_read_cpu($self, cpu, &v);

		if (rc) {
			percpu_swig_raise(rc);
			return NULL;
		}
		return PyLong_FromLongLong(v);
	}
	percpu_py_status x_register(const char *name, int leaf_flags, const char *descr,
	                            const char *const *const_labels) {
		return percpu_py_counter_register($self, name, leaf_flags, descr,
		                                  const_labels);
	}
	PyObject *x_unit_placement(unsigned cpu) {
		struct percpu_unit_placement pl;
		int rc = percpu_py_unit_placement($self, cpu, &pl);

		if (rc) {
			percpu_swig_raise(rc);
			return NULL;
		}
		return Py_BuildValue("(iiiIII)", pl.wanted_node, pl.bind_error,
		                     pl.actual_node, pl.pages, pl.pages_on_wanted,
		                     pl.pages_unknown);
	}
}

/* ---- CounterArray ------------------------------------------------------ */

%rename(CounterArray) percpu_py_counter_array;
PERCPU_SWIG_CTOR(percpu_py_counter_array)
%exception percpu_py_counter_array::x_fetch { $action if (!result) SWIG_fail; }
%exception percpu_py_counter_array::x_fetch_all { $action if (!result) SWIG_fail; }
struct percpu_py_counter_array {};
%extend percpu_py_counter_array {
	percpu_py_counter_array(size_t n) {
		struct percpu_py_counter_array *p;

		percpu_swig_ctor_err = percpu_py_counter_array_new(&p, n);
		return p;
	}
	~percpu_py_counter_array() { percpu_py_counter_array_free($self); }
	size_t x_size() { return $self->n; }
	percpu_py_status x_add(size_t i, int64_t v = 1) {
		return percpu_py_counter_array_add($self, i, v);
	}
	PyObject *x_fetch(size_t i) {
		uint64_t v;
		int rc = percpu_py_counter_array_fetch($self, i, &v);

		if (rc) {
			percpu_swig_raise(rc);
			return NULL;
		}
		return PyLong_FromUnsignedLongLong(v);
	}
	PyObject *x_fetch_all() {
		uint64_t *v = calloc($self->n, sizeof(*v));
		PyObject *list;

		if (!v)
			return PyErr_NoMemory();
		percpu_py_counter_array_fetch_all($self, v);
		list = PyList_New((Py_ssize_t)$self->n);
		for (size_t i = 0; list && i < $self->n; i++) {
			PyObject *item = PyLong_FromUnsignedLongLong(v[i]);

			if (!item) {
				Py_CLEAR(list);
				break;
			}
			PyList_SET_ITEM(list, (Py_ssize_t)i, item);
		}
		free(v);
		return list;
	}
	void x_zero() { percpu_py_counter_array_zero($self); }
	percpu_py_status x_register(const char *name, int leaf_flags, const char *descr,
	                            const char *const *const_labels,
	                            const char *elem_label,
	                            const char *const *elem_values) {
		return percpu_py_counter_array_register($self, name, leaf_flags, descr,
		                                        const_labels, elem_label,
		                                        elem_values);
	}
}

/* ---- RateCheck (counter_ratecheck) ------------------------------------- */

%rename(RateCheck) percpu_py_ratecheck;
PERCPU_SWIG_CTOR(percpu_py_ratecheck)
struct percpu_py_ratecheck {};
%extend percpu_py_ratecheck {
	percpu_py_ratecheck() {
		struct percpu_py_ratecheck *p;

		percpu_swig_ctor_err = percpu_py_ratecheck_new(&p);
		return p;
	}
	~percpu_py_ratecheck() { percpu_py_ratecheck_free($self); }
	int64_t x_check(int64_t limit) { return percpu_py_ratecheck_check($self, limit); }
	uint64_t x_count() { return percpu_py_ratecheck_count($self); }
}

/* ---- LocalCount ---------------------------------------------------------- */

%rename(LocalCount) percpu_py_localcount;
PERCPU_SWIG_CTOR(percpu_py_localcount)
%threadallow percpu_py_localcount::x_drain;
/* Freeing a live one trydrains, which waits out read sections in flight:
 * another thread's may need the GIL to exit. */
%threadallow percpu_py_localcount::~percpu_py_localcount;
%exception percpu_py_localcount::x_trydrain { $action if (!result) SWIG_fail; }
struct percpu_py_localcount {};
%extend percpu_py_localcount {
	percpu_py_localcount() {
		struct percpu_py_localcount *p;

		percpu_swig_ctor_err = percpu_py_localcount_new(&p);
		return p;
	}
	~percpu_py_localcount() { (void)percpu_py_localcount_free($self); }
	percpu_py_status x_acquire() { return percpu_py_localcount_acquire($self); }
	void x_release() { percpu_py_localcount_release($self); }
	percpu_py_status x_drain() { return percpu_py_localcount_drain($self); }
	/* True: drained.  False: references held (EBUSY). */
	PyObject *x_trydrain() {
		int rc;

		/* Its grace period may wait for another thread's read
		 * section, which needs the GIL to exit. */
		Py_BEGIN_ALLOW_THREADS
		rc = percpu_py_localcount_trydrain($self);
		Py_END_ALLOW_THREADS

		if (rc == -EBUSY)
			Py_RETURN_FALSE;
		if (rc) {
			percpu_swig_raise(rc);
			return NULL;
		}
		Py_RETURN_TRUE;
	}
	int x_state() { return percpu_py_localcount_state($self); }
	int64_t x_refcnt() { return percpu_py_localcount_refcnt($self); }
}

/* ---- pserialize(9) -------------------------------------------------------- */

%rename(Pserialize) percpu_py_pserialize;
PERCPU_SWIG_CTOR(percpu_py_pserialize)
/* perform waits for read sections of other threads, which need the GIL. */
%threadallow percpu_py_pserialize::x_perform;
struct percpu_py_pserialize {};
%extend percpu_py_pserialize {
	percpu_py_pserialize() {
		struct percpu_py_pserialize *p;

		percpu_swig_ctor_err = percpu_py_pserialize_new(&p);
		return p;
	}
	~percpu_py_pserialize() { percpu_py_pserialize_free($self); }
	percpu_py_status x_perform() { return percpu_py_pserialize_perform($self); }
}

/* Read sections belong to no object: module functions (GIL kept: two
 * per-CPU adds). */
int percpu_py_read_enter(void);
percpu_py_status percpu_py_read_exit(int s);
bool percpu_py_in_read_section(void);
unsigned long percpu_py_read_epoch(void);

/* Publication of the sysctl tree (module functions, GIL kept: quick). */
int percpu_py_sysctl_publish(void);
int percpu_py_sysctl_published(void);

/* ---- PercpuRef ---------------------------------------------------------- */

%rename(Ref) percpu_py_ref;
PERCPU_SWIG_CTOR(percpu_py_ref)
/* Anything that can wait for a switch in flight must let the worker,
 * whose confirm callback takes the GIL, make progress. */
%threadallow percpu_py_ref::~percpu_py_ref;
%threadallow percpu_py_ref::x_kill;
%threadallow percpu_py_ref::x_switch_to_atomic;
%threadallow percpu_py_ref::x_switch_to_atomic_sync;
%threadallow percpu_py_ref::x_switch_to_percpu;
%threadallow percpu_py_ref::x_resurrect;
%threadallow percpu_py_ref::x_reinit;
struct percpu_py_ref {};
%extend percpu_py_ref {
	/* The GIL is held here (no %threadallow): it may touch Python. */
	percpu_py_ref(unsigned flags, PyObject *dispatcher) {
		struct percpu_py_ref *r;
		int rc;

		if (!PyCallable_Check(dispatcher)) {
			PyErr_SetString(PyExc_TypeError, "dispatcher must be callable");
			return NULL;
		}
		Py_INCREF(dispatcher); /* dropped by the FREED event */
		rc = percpu_py_ref_new(&r, flags, percpu_swig_event, dispatcher);
		if (rc) {
			Py_DECREF(dispatcher);
			percpu_swig_ctor_err = rc;
			return NULL;
		}
		return r;
	}
	~percpu_py_ref() { percpu_py_ref_destroy($self); }
	percpu_py_status x_get(unsigned long n = 1) { return percpu_py_ref_get($self, n); }
	percpu_py_status x_put(unsigned long n = 1) { return percpu_py_ref_put($self, n); }
	bool x_tryget(unsigned long n = 1) { return percpu_py_ref_tryget($self, n); }
	bool x_tryget_live() { return percpu_py_ref_tryget_live($self); }
	percpu_py_status x_kill(int confirm = 0) { return percpu_py_ref_kill($self, confirm); }
	percpu_py_status x_switch_to_atomic(int confirm = 0) {
		return percpu_py_ref_switch_to_atomic($self, confirm);
	}
	percpu_py_status x_switch_to_atomic_sync() {
		return percpu_py_ref_switch_to_atomic_sync($self);
	}
	percpu_py_status x_switch_to_percpu() { return percpu_py_ref_switch_to_percpu($self); }
	percpu_py_status x_resurrect() { return percpu_py_ref_resurrect($self); }
	percpu_py_status x_reinit() { return percpu_py_ref_reinit($self); }
	bool x_is_zero() { return percpu_py_ref_is_zero($self); }
	bool x_is_dying() { return percpu_py_ref_is_dying($self); }
	unsigned x_mode() { return percpu_py_ref_mode($self); }
	unsigned long x_releases() { return percpu_py_ref_releases($self); }
}

/* ---- the sysctl tree ---------------------------------------------------- */

%exception sysctl_read { $action if (!result) SWIG_fail; }
%exception sysctl_read_and_zero { $action if (!result) SWIG_fail; }
%exception sysctl_list { $action if (!result) SWIG_fail; }
%exception sysctl_describe { $action if (!result) SWIG_fail; }
%{
static PyObject *percpu_swig_entry(const struct percpu_py_sysctl_entry *e)
{
	return Py_BuildValue("(ssInO)", e->name, e->descr, e->access,
	                     (Py_ssize_t)e->len, e->dynamic ? Py_True : Py_False);
}
%}
%threadallow stat_read_json;
%threadallow sysctl_prometheus;
/* malloc()ed text, or NULL with the -errno in percpu_swig_ctor_err. */
%typemap(out) char *sysctl_prometheus, char *stat_read_json {
	if (!$1) {
		percpu_swig_raise(percpu_swig_ctor_err ? percpu_swig_ctor_err : -ENOMEM);
		SWIG_fail;
	}
	$result = PyUnicode_FromString($1);
	free($1);
	if (!$result)
		SWIG_fail;
}
%inline %{
typedef int (*percpu_swig_reader)(const char *, uint64_t *, size_t, size_t *);

static PyObject *percpu_swig_read_leaf(const char *name, percpu_swig_reader read)
{
	for (;;) {
		int len = percpu_py_sysctl_len(name);
		uint64_t *v;
		size_t got;
		int rc;
		PyObject *list;

		if (len < 0) {
			percpu_swig_raise(len);
			return NULL;
		}
		v = calloc((size_t)len, sizeof(*v));
		if (!v)
			return PyErr_NoMemory();
		rc = read(name, v, (size_t)len, &got);
		if (rc == -ENOMEM) { /* replaced by a longer leaf meanwhile */
			free(v);
			continue;
		}
		if (rc) {
			free(v);
			percpu_swig_raise(rc);
			return NULL;
		}
		list = PyList_New((Py_ssize_t)got);
		for (size_t i = 0; list && i < got; i++) {
			PyObject *item = PyLong_FromUnsignedLongLong(v[i]);

			if (!item) {
				Py_CLEAR(list);
				break;
			}
			PyList_SET_ITEM(list, (Py_ssize_t)i, item);
		}
		free(v);
		return list;
	}
}

/* A leaf's values as a list (len 1 for a scalar leaf). */
PyObject *sysctl_read(const char *name)
{
	return percpu_swig_read_leaf(name, percpu_py_sysctl_read);
}

/* The same, zeroing what it returns (exactly). */
PyObject *sysctl_read_and_zero(const char *name)
{
	return percpu_swig_read_leaf(name, percpu_py_sysctl_read_and_zero);
}

percpu_py_status sysctl_zero(const char *name) { return percpu_py_sysctl_zero(name); }
percpu_py_status sysctl_remove(const char *name) { return percpu_py_sysctl_remove(name); }

/* Why this thread's last registration was refused ("" if none was). */
PyObject *sysctl_last_error(void)
{
	const char *s = percpu_py_sysctl_last_error();

	return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}


/* [(name, descr, access, len, dynamic), ...] in name order. */
PyObject *sysctl_list(const char *prefix)
{
	struct percpu_py_sysctl_list *l;
	PyObject *list;
	int rc = percpu_py_sysctl_list_new(&l, prefix);

	if (rc) {
		percpu_swig_raise(rc);
		return NULL;
	}
	list = PyList_New((Py_ssize_t)l->n);
	for (size_t i = 0; list && i < l->n; i++) {
		PyObject *item = percpu_swig_entry(&l->entries[i]);

		if (!item) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, item);
	}
	percpu_py_sysctl_list_free(l);
	return list;
}

PyObject *sysctl_describe(const char *name)
{
	struct percpu_py_sysctl_entry e;
	PyObject *item;
	int rc = percpu_py_sysctl_describe(name, &e);

	if (rc) {
		percpu_swig_raise(rc);
		return NULL;
	}
	item = percpu_swig_entry(&e);
	free(e.name);
	free(e.descr);
	return item;
}

/* Runs without the GIL (it reads another process's memory): only C here,
 * the str is built in the typemap. */
char *stat_read_json(long pid)
{
	char *text = percpu_py_stat_read_json(pid);

	if (!text)
		percpu_swig_ctor_err = -errno;
	return text;
}

/* Why this thread's last stat_read_json failed, naming the pid. */
PyObject *stat_last_error(void)
{
	const char *s = percpu_py_stat_last_error();

	return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* Runs without the GIL: only C here, the str is built in the typemap. */
char *sysctl_prometheus(const char *prefix)
{
	char *text = percpu_py_sysctl_prometheus(prefix);

	if (!text)
		percpu_swig_ctor_err = -errno;
	return text;
}
%}

/* ---- topology, paths, diagnostics -------------------------------------- */


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
long percpu_py_live_objects(void);
long percpu_py_leaked_objects(void);

%inline %{
/* (chunks, objects, bytes_in_use, bytes_capacity, units_unplaced) */
PyObject *slab_stats(void)
{
	struct percpu_slab_stats s;

	percpu_slab_get_stats(&s);
	return Py_BuildValue("(nnnnn)", (Py_ssize_t)s.chunks, (Py_ssize_t)s.objects,
	                     (Py_ssize_t)s.bytes_in_use, (Py_ssize_t)s.bytes_capacity,
	                     (Py_ssize_t)s.units_unplaced);
}
%}

/* ---- test-only stress loops (percpu_stress.h): GIL released ---------- */

%rename(StressSync) percpu_stress_sync;
PERCPU_SWIG_CTOR(percpu_stress_sync)
struct percpu_stress_sync {};
%extend percpu_stress_sync {
	percpu_stress_sync() {
		struct percpu_stress_sync *s;

		percpu_swig_ctor_err = percpu_stress_sync_new(&s);
		return s;
	}
	~percpu_stress_sync() { percpu_stress_sync_free($self); }
	int64_t x_get(int field) { return percpu_stress_sync_get($self, field); }
	void x_set(int field, int64_t v) { percpu_stress_sync_set($self, field, v); }
}

%threadallow percpu_stress_counter_add;
%threadallow percpu_stress_array_add;
%threadallow percpu_stress_counter_drain_rounds;
%threadallow percpu_stress_localcount_cycle;
%threadallow percpu_stress_localcount_hold;
%threadallow percpu_stress_localcount_drain;
%threadallow percpu_stress_ref_get_put;
%threadallow percpu_stress_ref_tryget_put;
%threadallow percpu_stress_rendezvous;

uint64_t percpu_stress_counter_add(struct percpu_py_counter *c, uint64_t iters,
                                   int64_t delta);
uint64_t percpu_stress_array_add(struct percpu_py_counter_array *a, uint64_t iters);
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
