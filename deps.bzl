# SPDX-License-Identifier: MIT
"""The repositories percpu needs, for this workspace and for any other.

In a consumer's WORKSPACE (Bazel 4.2.3, .bazelversion):

    local_repository(name = "percpu", path = "/path/to/percpu")  # or http_archive
    load("@percpu//:deps.bzl", "percpu_deps")
    percpu_deps()

Everything resolves offline.  Bazel 4.2.3 (Debian's bazel-bootstrap) would
otherwise download rules_cc, rules_java and the coverage tools; Debian's
bazel-rules-cc is too new for 4.2.3, so small stubs in tools/bazel_stubs/
stand in (written for this repository, not vendored code).  They are found
through a label of this repository, so the same call works here
(WORKSPACE) and from a workspace that names this one @percpu.
A repository the caller has already defined is left alone.
"""

def _percpu_tree_impl(rctx):
    # The directory, inside the repository that holds this file, that
    # becomes the new repository: its entries are linked one by one.
    root = rctx.path(Label("//:deps.bzl")).dirname
    src = root
    for part in rctx.attr.dir.split("/"):
        src = src.get_child(part)
    if not src.exists:
        fail("percpu_deps: %s does not exist" % src)
    for entry in src.readdir():
        rctx.symlink(entry, entry.basename)

_percpu_tree = repository_rule(
    implementation = _percpu_tree_impl,
    attrs = {"dir": attr.string(mandatory = True)},
    local = True,
)

_PYTHON_HEADERS_BUILD = """
cc_library(
    name = "python_headers",
    hdrs = glob(["**/*.h"]),
    includes = ["."],
    visibility = ["//visibility:public"],
)
"""

def percpu_deps(
        python_include = "/usr/include/python3.11",
        platforms_path = "/usr/share/bazel/tools/platforms",
        register_python_toolchain = True):
    """Defines what building percpu's targets needs.

    Args:
      python_include: the system Python's headers (python3-dev), for the
        SWIG and CFFI modules (@percpu//bindings, @percpu//python:percpu).
      platforms_path: @platforms (Debian package bazel-platforms).
      register_python_toolchain: register percpu's py toolchain (the system
        /usr/bin/python3), which its py_binary and py_test targets run on.
    """
    for name in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        if not native.existing_rule(name):
            _percpu_tree(name = name, dir = "tools/bazel_stubs/" + name)
    if not native.existing_rule("platforms"):
        native.local_repository(name = "platforms", path = platforms_path)
    if not native.existing_rule("python_headers"):
        native.new_local_repository(
            name = "python_headers",
            build_file_content = _PYTHON_HEADERS_BUILD,
            path = python_include,
        )
    if register_python_toolchain:
        native.register_toolchains(str(Label("//tools/python:py_toolchain")))
