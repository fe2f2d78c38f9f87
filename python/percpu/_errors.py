# SPDX-License-Identifier: MIT
"""The one exception class both backends raise, and the errno mapping."""

import errno
import os

__all__ = ["PercpuError", "error", "raise_errno", "with_context"]


class PercpuError(OSError):
    """A call into the C library failed.

    An :class:`OSError` subclass: ``errno`` and ``strerror`` (the errno's
    own text) say why -- ``errno.ENOMEM`` when per-CPU memory cannot be
    had, ``errno.EINVAL`` for a call the object's state does not allow,
    ``errno.ENOENT`` for an unknown sysctl name, ...  ``detail`` (None
    when raised without one) says what was wrong and on which object, and
    ``str()`` shows it::

        [Errno 22] LocalCount.drain: a drain already began or succeeded
        (state: drained); drain()/trydrain() succeed once
        (percpu.LocalCount at 0x7f...)

    Both backends raise this same class.
    """

    #: What failed, why, and on which object (None: only the errno is known).
    detail = None

    def __str__(self):
        if self.detail is None:
            return super().__str__()
        return f"[Errno {self.errno}] {self.detail}"


def raise_errno(rc, where=None, why=None):
    """Raise for a C status ``rc`` (a negative errno): ``-ERANGE`` is an
    :class:`IndexError`, anything else a :class:`PercpuError`.  `where`
    (the operation, and the object) and `why` (the reason; default: the
    errno's text) make the message ``"where: why"``."""
    err = -rc
    if err == errno.ERANGE:  # an index out of range
        raise IndexError(_message(where, why or "index out of range"))
    raise _error(err, _message(where, why or os.strerror(err)) if where else None)


def with_context(exc, where, why=None, who=None):
    """A copy of `exc` (a PercpuError or IndexError a binding raised)
    saying `where` (the operation) it happened, `why` (default: the
    errno's text) and on `who` (the object); errno, strerror and class
    are kept.  Any other exception is returned as it is."""
    if isinstance(exc, PercpuError):
        err = exc.errno
        text = why or (os.strerror(err) if err else str(exc))
        return _error(err, _message(where, text, who))
    if isinstance(exc, IndexError):
        return IndexError(_message(where, why or "index out of range", who))
    return exc


def _error(err, detail):
    e = PercpuError(err, os.strerror(err))
    e.detail = detail
    return e


def error(err, where, why=None, who=None):
    """A PercpuError for errno `err` (positive) with its detail."""
    return _error(err, _message(where, why or os.strerror(err), who))


def _message(where, why, who=None):
    text = f"{where}: {why}" if where else why
    return f"{text} ({who})" if who else text
