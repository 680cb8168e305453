# SPDX-License-Identifier: MIT
"""Exceptions: one class per libnvpflow status code.

Every failing call raises a subclass of NvpError carrying
  .code     the library's status code (a negative int, e.g. -2 for EDIM)
  .message  the library's detailed message for the failure
  .reason   nvp_strerror(code), the short generic description
Each subclass also derives from the closest built-in exception, so that
`except ValueError`, `except OSError`, `except MemoryError` work too.
"""
from . import _lib

__all__ = [
    "NvpError", "InvalidArgument", "DimensionError", "OutOfMemory",
    "Overflow", "NonFinite", "FileError", "FormatError", "VersionError",
    "ThreadError", "BufferSize", "Unsupported", "ClosedError",
]


class NvpError(Exception):
    """Base class of every error the library (or these bindings) reports."""

    code = None

    def __init__(self, message, code=None):
        if code is None:
            code = type(self).code
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def reason(self):
        if self.code is None:
            return ""
        return _lib.decode(_lib.lib.nvp_strerror(self.code))

    def __reduce__(self):
        return (type(self), (self.message, self.code))


class InvalidArgument(NvpError, ValueError):
    """NVP_EINVAL: NULL, out of range, bad flag, n == 0."""
    code = _lib.EINVAL


class DimensionError(NvpError, ValueError):
    """NVP_EDIM: a dimension or length mismatch."""
    code = _lib.EDIM


class OutOfMemory(NvpError, MemoryError):
    """NVP_ENOMEM: an allocation failed."""
    code = _lib.ENOMEM


class Overflow(NvpError, OverflowError):
    """NVP_EOVERFLOW: a size computation would overflow, or too big."""
    code = _lib.EOVERFLOW


class NonFinite(NvpError, ArithmeticError):
    """NVP_ENONFINITE: a loss, gradient or value is NaN or infinite."""
    code = _lib.ENONFINITE


class FileError(NvpError, OSError):
    """NVP_EIO: a file could not be read or written."""
    code = _lib.EIO


class FormatError(NvpError, ValueError):
    """NVP_EFORMAT: data is truncated, corrupt or malformed."""
    code = _lib.EFORMAT


class VersionError(NvpError, ValueError):
    """NVP_EVERSION: data uses an unsupported format version."""
    code = _lib.EVERSION


class ThreadError(NvpError, RuntimeError):
    """NVP_ETHREAD: a thread could not be started."""
    code = _lib.ETHREAD


class BufferSize(NvpError, ValueError):
    """NVP_EBUFSIZE: a caller-provided buffer is too small."""
    code = _lib.EBUFSIZE


class Unsupported(NvpError, RuntimeError):
    """NVP_EUNSUPPORTED: the CPU lacks the requested kernels."""
    code = _lib.EUNSUPPORTED


class Busy(NvpError, RuntimeError):
    """NVP_EBUSY: another thread is using the handle (set_threads during
    a call on the same chain)."""
    code = _lib.EBUSY


class ClosedError(InvalidArgument):
    """A method was called on a handle after close() (raised by the
    bindings, never by the library; the C equivalent is a NULL handle)."""


_BY_CODE = {cls.code: cls for cls in (
    InvalidArgument, DimensionError, OutOfMemory, Overflow, NonFinite,
    FileError, FormatError, VersionError, ThreadError, BufferSize,
    Unsupported, Busy)}


def error_for(code, message=None, handle_errmsg=None):
    """The exception for status `code`.  The message is, in order: the
    calling thread's nvp_errmsg() (the message of exactly this failure),
    then the handle's nvp_<type>_errmsg(), then nvp_strerror(code)."""
    if message is None:
        message = _lib.decode(_lib.lib.nvp_errmsg())
        if not message and handle_errmsg is not None:
            message = handle_errmsg()
        if not message:
            message = _lib.decode(_lib.lib.nvp_strerror(code))
    cls = _BY_CODE.get(code, NvpError)
    return cls(message, code)


def check(rc, handle_errmsg=None):
    """Raises the matching NvpError when rc is not NVP_OK."""
    if rc != _lib.OK:
        raise error_for(rc, handle_errmsg=handle_errmsg)
