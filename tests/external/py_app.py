# SPDX-License-Identifier: MIT
"""A consumer's Python program on @percpu//python:percpu (tests/external)."""
import percpu

hits = percpu.Counter()
for _ in range(1000):
    hits.add()
print("hits=%d" % int(hits))
