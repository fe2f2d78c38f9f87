# SPDX-License-Identifier: MIT
"""CFFI out-of-line API-mode builder for the percpu Python binding.

Declares, for cffi, the same surface the SWIG interface (percpu.i) wraps:
the C shim (percpu_py.h) and the test-only stress loops (percpu_stress.h),
read from those headers themselves (header_cdef: a new shim call needs
no line here), plus a few public core calls (topology, paths), listed in
CORE_CDEF.  API mode: the generated C includes the real headers, so the
C compiler checks every declaration against them (a signature that
drifts is a build error, not a crash), and constants take their values
from the headers.

Used three ways, all producing the module ``percpu._percpu_cffi``:
  * Bazel (bindings/BUILD): ``cffi_build.py --emit OUT.c``, then
    cc_binary(linkshared=True) compiles it against libpercpu.so.0;
  * setup.py: emit_c_code() into the build directory, then an Extension;
  * by hand: ``python3 bindings/cffi_build.py --emit /tmp/x.c``
    (``--cdef`` prints the declarations cffi is given).

GIL: cffi releases the GIL around every C call, and there is no way to
opt out per function (cffi/recompiler.py).  Hence the C side must never
touch Python (the shim does not), and callbacks come back through the
``extern "Python"`` function below, which takes the GIL itself.
"""

import os
import re
import sys

from cffi import FFI

MODULE_NAME = "percpu._percpu_cffi"

# What the bindings declare, read from these headers (next to this file).
HEADERS = ("percpu_py.h", "percpu_stress.h")
HERE = os.path.dirname(os.path.abspath(__file__))

# The few public core declarations the bindings reach directly (topology,
# diagnostics).  The core headers themselves are not parsed: they hold
# the library's inline fast paths and arch includes.  API mode still
# checks each line against them.
CORE_CDEF = r"""
static const int PERCPU_REF_INIT_ATOMIC;
static const int PERCPU_REF_INIT_DEAD;
static const int PERCPU_REF_ALLOW_REINIT;
static const int LOCALCOUNT_LIVE;
static const int LOCALCOUNT_TRYDRAINING;
static const int LOCALCOUNT_DRAINING;
static const int LOCALCOUNT_DRAINED;
static const int ERANGE;
static const int EBUSY;
static const int ENOMEM;
static const int ENOENT;

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
"""

# C -> Python: the shim's event callback, implemented with
# @ffi.def_extern() in percpu/_cffi_driver.py.
CALLBACK_CDEF = r"""
extern "Python" void percpu_cffi_event(void *ctx, int event);
"""

# Field types cffi is told as they are; a struct with any other field
# (a core type, a mutex) is opaque to Python.
_PLAIN_FIELD = re.compile(
    r"^(const )?(char|bool|int|unsigned|unsigned int|long|unsigned long|"
    r"size_t|u?int(8|16|32|64)_t|struct \w+ ?\*)[ *]*\w+$")


def _matching_brace(text, start):
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("cffi_build: unbalanced braces")


def _statements(text):
    return [" ".join(d.split()) + ";" for d in text.split(";") if d.strip()]


def header_cdef(text):
    """A shim header's declarations, in the form cffi's cdef takes.

    Kept: prototypes and typedefs as written.  Translated:
    ``static inline T f(args) { ... }`` to ``T f(args);``;
    ``#define X <value>`` to ``#define X ...`` and ``enum { X = ... }``
    to ``static const int X;`` (values from the header, API mode);
    ``struct s { ... };`` to ``struct s { fields; ...; };`` when every
    field is a plain type, else to an opaque ``struct s;``.  Dropped:
    comments, #include/#ifndef lines, the C++ ``extern "C"`` guard.
    Anything else with a body is an error, not a guess.
    """
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"#ifdef[ \t]+__cplusplus.*?#endif", "", text, flags=re.S)
    out = ["#define %s ..." % m.group(1) for m in re.finditer(
        r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)[ \t]+\S", text, re.M)]
    text = re.sub(r"^[ \t]*#.*$", "", text, flags=re.M)
    pos = 0
    while True:
        brace = text.find("{", pos)
        if brace < 0:
            out += _statements(text[pos:])
            return "\n".join(out) + "\n"
        head_start = max(text.rfind(";", pos, brace),
                         text.rfind("}", pos, brace)) + 1
        out += _statements(text[pos:max(head_start, pos)])
        head = " ".join(text[max(head_start, pos):brace].split())
        end = _matching_brace(text, brace)
        body = text[brace + 1:end]
        if head.startswith("static inline "):
            out.append(head[len("static inline "):] + ";")
            pos = end + 1
            continue
        semi = text.index(";", end)
        if head == "enum":
            for item in body.split(","):
                name = item.split("=")[0].strip()
                if name:
                    out.append("static const int %s;" % name)
        elif head.startswith("struct ") and not text[end + 1:semi].strip():
            fields = [f[:-1] for f in _statements(body)]
            if all(_PLAIN_FIELD.match(f) for f in fields):
                out.append("%s { %s; ...; };" % (head, "; ".join(fields)))
            else:
                out.append(head + ";")
        else:
            raise ValueError("cffi_build: cannot declare %r for cffi" % head)
        pos = semi + 1


def make_cdef(headers_dir=HERE):
    """The whole cdef: core declarations, then each shim header's."""
    parts = [CORE_CDEF]
    for name in HEADERS:
        with open(os.path.join(headers_dir, name)) as f:
            parts.append("/* ---- %s ---- */\n" % name + header_cdef(f.read()))
    parts.append(CALLBACK_CDEF)
    return "\n".join(parts)


SOURCE = r"""
#include "percpu_py.h"
#include "percpu_stress.h"
"""


def make_builder(**set_source_kwargs):
    """An FFI builder for MODULE_NAME; kwargs go to set_source()."""
    ffibuilder = FFI()
    ffibuilder.cdef(make_cdef())
    ffibuilder.set_source(MODULE_NAME, SOURCE, **set_source_kwargs)
    return ffibuilder


ffibuilder = make_builder()


def main(argv):
    if len(argv) == 3 and argv[1] == "--emit":
        # C source only: the compiler and linker are Bazel's or setup.py's.
        ffibuilder.emit_c_code(argv[2])
        return 0
    if argv[1:] == ["--cdef"]:
        sys.stdout.write(make_cdef())
        return 0
    print("usage: cffi_build.py --emit OUT.c | --cdef", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
