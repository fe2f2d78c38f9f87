# SPDX-License-Identifier: MIT
"""Entry point: run this directory's pytest suite (Bazel's py_binary)."""

import os
import sys

import pytest

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.exit(pytest.main([here, "-q", "-p", "no:cacheprovider", "-rs"] + sys.argv[1:]))
