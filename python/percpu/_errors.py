# SPDX-License-Identifier: MIT
"""The one exception class both backends raise, and the errno mapping."""

import os

__all__ = ["PercpuError", "raise_errno"]


class PercpuError(OSError):
    """A call into the C library failed.

    An :class:`OSError` subclass: ``errno`` and ``strerror`` say why
    (``errno.ENOMEM`` when per-CPU memory cannot be had, ``errno.EINVAL``
    for a call the object's state does not allow, ``errno.ENOENT`` for an
    unknown sysctl name, ...).  Both backends raise this same class.
    """


def raise_errno(rc):
    """Raise for a C status ``rc`` (a negative errno): ``-ERANGE`` is an
    :class:`IndexError`, anything else a :class:`PercpuError`."""
    err = -rc
    if err == 34:  # ERANGE: an index out of range
        raise IndexError("index out of range")
    raise PercpuError(err, os.strerror(err))
