# SPDX-License-Identifier: MIT
"""`bazel run //python:stress -- ARGS` == `python3 -m percpu.stress ARGS`."""

import sys

from percpu.stress import main

if __name__ == "__main__":
    sys.exit(main())
