# SPDX-License-Identifier: MIT
"""Builds the percpu Python package: the C library and both bindings.

Metadata is in pyproject.toml; this file only adds what it cannot say --
how the C parts are built, mirroring //bindings in Bazel:

  percpu/libpercpu.so.0    core/src/*.c + numa/numa.c: the ONE copy of
                           the library's state (slab, sysctl tree,
                           percpu_ref worker) in a process
  percpu/_percpu_swig*.so  swig -python -builtin bindings/percpu.i, plus
                           the shim; linked to libpercpu.so.0 ($ORIGIN)
  percpu/_percpu_cffi*.so  bindings/cffi_build.py's emitted C, plus the
                           shim; linked to libpercpu.so.0 ($ORIGIN)

Both extension modules link against the same libpercpu.so.0 rather than
each getting a static copy, so both backends share one slab and one
sysctl tree.  Needs: a C compiler, swig, python3-dev headers, libnuma-dev.
"""

import glob
import importlib.util
import os
import subprocess
import sys


# ---- Which Python (issue 14) -------------------------------------------
# The build imports setuptools, wheel (for bdist_wheel) and cffi from THE
# INTERPRETER RUNNING IT.  A venv made by a python3 without Debian's
# packages (pyenv's, a self-built one: whatever is first on PATH) has none
# of them, and pip then said only "invalid command 'bdist_wheel'".  Say
# which interpreter it was and what to use instead.
def _check_build_modules():
    def have(name):
        try:
            return importlib.util.find_spec(name) is not None
        except ImportError:  # a parent package is missing
            return False

    missing = [m for m in ("setuptools", "cffi") if not have(m)]
    # setuptools >= 70.1 has bdist_wheel itself; older ones need wheel.
    if not have("wheel") and not have("setuptools.command.bdist_wheel"):
        missing.insert(1, "wheel")
    if not missing:
        return
    venv = (f" (a venv of {sys.base_prefix})" if sys.prefix != sys.base_prefix
            else "")
    sys.exit(
        f"percpu setup.py: {sys.executable}{venv}, Python "
        f"{sys.version.split()[0]}, cannot import {', '.join(missing)}, which "
        f"the build needs.\n"
        f"Build with Debian's /usr/bin/python3, in a venv that sees its "
        f"packages:\n"
        f"  apt-get install python3-setuptools python3-wheel python3-cffi "
        f"python3-venv python3-dev swig libnuma-dev\n"
        f"  /usr/bin/python3 -m venv --system-site-packages /tmp/venv\n"
        f"  /tmp/venv/bin/pip install --no-build-isolation --no-index .\n"
        f"A venv made by another python3 (e.g. pyenv's, if it comes first on "
        f"PATH) does not see Debian's packages.")


_check_build_modules()
# -------------------------------------------------------------------------

from setuptools import Extension, setup  # noqa: E402 (after the check)
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def _copts(name):
    # The flags are written once, in copts.bzl (PIP_COPTS: why these).
    spec = importlib.util.spec_from_file_location(
        "percpu_copts", os.path.join(ROOT, "tools", "copts.py"))
    copts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copts)
    return copts.load(os.path.join(ROOT, "copts.bzl"))[name]


CFLAGS = _copts("PIP_COPTS")
CORE_SOURCES = sorted(glob.glob("core/src/*.c")) + ["numa/numa.c"]
# The shim, and the reader of other processes' stats segments (percpu.stat:
# the same parser percpu-stat uses, which links no library writer).
SHIM_SOURCES = ["bindings/percpu_py.c", "bindings/stress_entry.c",
                "cli/percpu-stat/segment_parse.c", "cli/percpu-stat/segment_read.c",
                "cli/percpu-stat/stat_render.c"]
LIBNAME = "libpercpu.so.0"


class build_percpu(build_ext):
    """build_ext that first builds libpercpu.so.0 and generates the two
    wrappers, then links both modules against the library."""

    def build_extensions(self):
        # Here self.compiler exists (build_ext.run() made it).
        self.lib_dir = self._package_dir()
        self._build_library()
        self._generate_wrappers()
        super().build_extensions()

    def _package_dir(self):
        if self.inplace:
            return os.path.join(ROOT, "python", "percpu")
        return os.path.join(self.build_lib, "percpu")

    def _includes(self):
        return ["core/include", "numa/include", "bindings",
                "cli/percpu-stat/include", "cli/percpu-stat"]

    def _build_library(self):
        cc = self.compiler
        objects = cc.compile(CORE_SOURCES, output_dir=self.build_temp,
                             include_dirs=self._includes(),
                             extra_postargs=CFLAGS + ["-fPIC"])
        os.makedirs(self.lib_dir, exist_ok=True)
        cc.link_shared_object(
            objects, LIBNAME, output_dir=self.lib_dir,
            libraries=["numa", "pthread"],
            extra_postargs=["-Wl,-soname," + LIBNAME, "-Wl,-z,nodelete",
                            # exports the public API only, as in Bazel
                            "-Wl,--version-script="
                            + os.path.join(ROOT, "core", "libpercpu.map")])

    def _generate_wrappers(self):
        os.makedirs(self.build_temp, exist_ok=True)
        swig_c = os.path.join(self.build_temp, "percpu_swig_wrap.c")
        subprocess.check_call(["swig", "-python", "-builtin", "-outdir",
                               self.build_temp, "-o", swig_c, "bindings/percpu.i"])
        spec = importlib.util.spec_from_file_location(
            "percpu_cffi_build", os.path.join("bindings", "cffi_build.py"))
        builder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(builder)
        cffi_c = os.path.join(self.build_temp, "_percpu_cffi.c")
        builder.ffibuilder.emit_c_code(cffi_c)
        for ext in self.extensions:
            generated = swig_c if ext.name.endswith("_swig") else cffi_c
            ext.sources = [generated] + SHIM_SOURCES
            ext.include_dirs = self._includes()
            ext.library_dirs = [self.lib_dir]
            ext.extra_compile_args = CFLAGS
            ext.extra_link_args = [
                "-l:" + LIBNAME,
                "-Wl,-rpath,$ORIGIN",  # libpercpu.so.0 sits next to the module
                "-Wl,-z,nodelete",     # inlined rseq sections: never unmap
                "-Wl,--version-script=bindings/pyext.lds",
            ]


setup(
    ext_modules=[
        # Sources are filled in by build_percpu (they are generated).
        Extension("percpu._percpu_swig", sources=["bindings/percpu.i"]),
        Extension("percpu._percpu_cffi", sources=["bindings/cffi_build.py"]),
    ],
    cmdclass={"build_ext": build_percpu},
)
