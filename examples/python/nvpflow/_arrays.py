# SPDX-License-Identifier: MIT
"""Moving float arrays between Python and the C library.

With numpy (the default when it imports), results are numpy arrays that
the library writes into directly, and float32 C-contiguous inputs are
passed by pointer without a copy; other arrays are converted once with
np.ascontiguousarray(dtype=float32).

Without numpy (or with the environment variable NVPFLOW_NO_NUMPY=1),
inputs may be lists (or tuples) of rows, or flat row-major buffers:
array.array('f') (passed without a copy), other array.array typecodes,
float32 memoryviews, and ctypes c_float arrays.  Per-point results come
back as lists (rows as lists of floats); parameter-sized vectors come back
as array.array('f').
"""
import array
import ctypes
import math
import numbers
import os
from ctypes import POINTER, c_float, c_int, c_uint64

from . import errors

try:
    if os.environ.get("NVPFLOW_NO_NUMPY", "") not in ("", "0"):
        raise ImportError("disabled by NVPFLOW_NO_NUMPY")
    import numpy as np  # noqa: F401
except ImportError:
    np = None

_FP = POINTER(c_float)


def have_numpy():
    return np is not None


def _dim_error(msg):
    return errors.DimensionError(msg)


def _numpy_ptr(a):
    return a.ctypes.data_as(_FP)


def _flat_buffer(x, name):
    """A flat float buffer (array.array, memoryview, ctypes array) as
    (length, pointer, keepalive), without a copy when it is already
    float32."""
    if isinstance(x, ctypes.Array):
        if x._type_ is not c_float:
            return _copy_floats(list(x), name)
        return len(x), x, x
    if isinstance(x, array.array):
        if x.typecode != "f":
            return _copy_floats(x, name)
        n = len(x)
        if n == 0:
            return 0, (c_float * 1)(), None
        buf = (c_float * n).from_buffer(x)
        return n, buf, buf
    mv = memoryview(x)
    if mv.format != "f":
        if mv.ndim == 1:
            return _copy_floats(mv.tolist(), name)
        raise TypeError("%s: a buffer of format %r is not float32"
                        % (name, mv.format))
    if not mv.c_contiguous:
        raise TypeError("%s: the buffer is not contiguous" % name)
    mv = mv.cast("B").cast("f")
    n = len(mv)
    if n == 0:
        return 0, (c_float * 1)(), None
    if mv.readonly:
        buf = (c_float * n).from_buffer_copy(mv)
    else:
        buf = (c_float * n).from_buffer(mv)
    return n, buf, buf


# The largest finite float32: a finite value beyond it would become an
# infinity on the way in.
_FLT_MAX = 3.4028234663852886e38


def _check_scalar(v, name, where):
    """A real number that float32 can hold, or an error naming it: the
    same rule with or without numpy (None, strings, complex numbers and
    dates are not numbers; NaN and infinities are, the library decides)."""
    if not isinstance(v, numbers.Real):
        raise TypeError("%s: %r at %s is not a real number"
                        % (name, v, where))
    f = float(v)
    if math.isfinite(f) and abs(f) > _FLT_MAX:
        raise ValueError("%s: %r at %s is beyond the float32 range"
                         % (name, v, where))


def _check_numpy(a, name):
    """The same rule for a numpy array, by dtype where it can."""
    kind = a.dtype.kind
    if kind in "biu":
        return
    if kind == "f":
        if a.dtype.itemsize > 4:
            big = np.isfinite(a) & (np.abs(a) > _FLT_MAX)
            if big.any():
                where = tuple(int(i) for i in np.argwhere(big)[0])
                raise ValueError("%s: %r at %s is beyond the float32 range"
                                 % (name, float(a[where]), where))
        return
    if kind == "O":
        for where, v in np.ndenumerate(a):
            _check_scalar(v, name, where)
        return
    raise TypeError("%s: values of type %s are not real numbers"
                    % (name, a.dtype))


def _to_float32(x, name):
    """x as a C-contiguous float32 numpy array, after the checks."""
    a = np.asarray(x)
    _check_numpy(a, name)
    return np.ascontiguousarray(a, dtype=np.float32)


def _copy_floats(seq, name):
    seq = list(seq)
    for i, v in enumerate(seq):
        _check_scalar(v, name, i)
    buf = (c_float * max(len(seq), 1))(*seq)
    return len(seq), buf, buf


def _is_flat(x):
    return isinstance(x, (array.array, memoryview, ctypes.Array))


def rows_in(x, dim, name="x"):
    """An n x dim input as (n, pointer, keepalive)."""
    if _is_flat(x):
        length, ptr, keep = _flat_buffer(x, name)
        if length % dim:
            raise _dim_error("%s: a flat buffer of %d floats is not a whole "
                             "number of rows of %d" % (name, length, dim))
        return length // dim, ptr, keep
    if np is not None and not isinstance(x, (list, tuple)):
        return _numpy_rows(_to_float32(x, name), dim, name)
    if np is not None and len(x):
        try:
            a = np.asarray(x)
        except (ValueError, TypeError):
            a = None  # ragged or odd: the pure path names the bad row
        if a is not None and a.dtype.kind != "O":
            _check_numpy(a, name)
            return _numpy_rows(np.ascontiguousarray(a, dtype=np.float32),
                               dim, name)
    return _list_rows(x, dim, name)


def _numpy_rows(a, dim, name):
    if a.ndim != 2 or a.shape[1] != dim:
        raise _dim_error("%s: expected shape (n, %d), got %s"
                         % (name, dim, tuple(a.shape)))
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, dtype=np.float32)
    return a.shape[0], _numpy_ptr(a), a


def _list_rows(x, dim, name):
    try:
        rows = list(x)
    except TypeError:
        raise TypeError("%s must be a sequence of rows of %d numbers"
                        % (name, dim)) from None
    flat = []
    for i, row in enumerate(rows):
        try:
            k = len(row)
        except TypeError:
            raise _dim_error("%s: row %d is not a sequence (expected rows "
                             "of %d numbers)" % (name, i, dim)) from None
        if k != dim:
            raise _dim_error("%s: row %d has %d values, expected %d"
                             % (name, i, k, dim))
        flat.extend(row)
    n, ptr, keep = _copy_floats(flat, name)
    return n // dim, ptr, keep


def context_rows(context, n, cdim, name="context"):
    """The context of a _given call, n rows of cdim floats, as (pointer,
    keepalive).  A model that reads no context (cdim == 0) takes None (or
    an empty sequence), passed to the library as NULL."""
    if cdim == 0:
        if context is not None and len(context):
            raise _dim_error("%s: the model reads no context; pass None"
                             % name)
        return None, None
    if context is None:
        raise errors.InvalidArgument("%s: the model reads %d context values "
                                     "per row; none given" % (name, cdim))
    m, ptr, keep = rows_in(context, cdim, name)
    if m != n:
        raise _dim_error("%s: %d rows for %d rows of data" % (name, m, n))
    return ptr, keep


def vec_in(x, count, name):
    """A flat vector of exactly `count` floats as (pointer, keepalive)."""
    if _is_flat(x):
        length, ptr, keep = _flat_buffer(x, name)
    elif np is not None:
        a = _to_float32(x, name)
        if a.ndim != 1:
            raise _dim_error("%s: expected a flat vector, got shape %s"
                             % (name, tuple(a.shape)))
        length, ptr, keep = a.shape[0], _numpy_ptr(a), a
    else:
        length, ptr, keep = _copy_floats(list(x), name)
    if length != count:
        raise _dim_error("%s: expected %d values, got %d"
                         % (name, count, length))
    return ptr, keep


def writable_vec(x, count, name):
    """A caller's flat float32 vector that the library updates in place
    (for Adam.step on a plain parameter vector): (pointer, keepalive)."""
    if np is not None and isinstance(x, np.ndarray):
        if (x.dtype != np.float32 or x.ndim != 1 or
                not x.flags.c_contiguous or not x.flags.writeable):
            raise TypeError("%s: need a writable, contiguous 1-D float32 "
                            "array to update in place" % name)
        ptr, keep = _numpy_ptr(x), x
        length = x.shape[0]
    elif isinstance(x, (array.array, memoryview, ctypes.Array)):
        if (isinstance(x, array.array) and x.typecode != "f") or (
                isinstance(x, ctypes.Array) and x._type_ is not c_float) or (
                isinstance(x, memoryview) and (x.format != "f" or
                                               x.readonly)):
            raise TypeError("%s: need a writable float32 buffer to update "
                            "in place" % name)
        length, ptr, keep = _flat_buffer(x, name)
    else:
        raise TypeError("%s: need a Chain, a float32 numpy array or an "
                        "array.array('f') to update in place" % name)
    if length != count:
        raise _dim_error("%s: expected %d values, got %d"
                         % (name, count, length))
    return ptr, keep


class RowsOut:
    """An n x dim float output buffer."""

    def __init__(self, n, dim):
        self.n, self.dim = n, dim
        if np is not None:
            self.buf = np.empty((n, dim), dtype=np.float32)
            self.ptr = _numpy_ptr(self.buf)
        else:
            self.buf = (c_float * max(n * dim, 1))()
            self.ptr = self.buf

    def result(self):
        if np is not None:
            return self.buf
        b, d = self.buf, self.dim
        return [b[i * d:(i + 1) * d] for i in range(self.n)]


class StackOut:
    """(k, n, dim) float output: numpy array, or a list of k row lists."""

    def __init__(self, k, n, dim):
        self.k, self.n, self.dim = k, n, dim
        if np is not None:
            self.buf = np.empty((k, n, dim), dtype=np.float32)
            self.ptr = _numpy_ptr(self.buf)
        else:
            self.buf = (c_float * max(k * n * dim, 1))()
            self.ptr = self.buf

    def result(self):
        if np is not None:
            return self.buf
        b, n, d = self.buf, self.n, self.dim
        return [[b[(s * n + i) * d:(s * n + i + 1) * d] for i in range(n)]
                for s in range(self.k)]


class VecOut:
    """n floats: numpy 1-D array, or a list (kind='list') / array('f')
    (kind='array') without numpy.  zeros=True starts it at zero (the
    other buffers always do; numpy's are otherwise uninitialised).  The
    pointer is valid (never NULL) even for n == 0."""

    def __init__(self, n, kind="list", ctype=c_float, zeros=False):
        self.n, self.kind, self.ctype = n, kind, ctype
        if np is not None:
            dt = {c_float: np.float32, c_int: np.intc,
                  c_uint64: np.uint64}[ctype]
            self.buf = (np.zeros if zeros else np.empty)(max(n, 1),
                                                         dtype=dt)[:n]
            self.ptr = self.buf.ctypes.data_as(POINTER(ctype))
        elif kind == "array" and ctype is c_float:
            self.buf = array.array("f", bytes(4 * n))
            keep = (c_float * max(n, 1)).from_buffer(self.buf) if n else \
                (c_float * 1)()
            self.ptr = keep
        else:
            self.buf = (ctype * max(n, 1))()
            self.ptr = self.buf

    def result(self):
        if np is not None:
            return self.buf
        if self.kind == "array" and self.ctype is c_float:
            # Drop the ctypes view so the array can be resized again.
            self.ptr = None
            return self.buf
        return self.buf[:self.n]


def count(n, name="n"):
    """A non-negative int for a size_t argument (ctypes would wrap a
    negative one silently)."""
    try:
        v = n.__index__()
    except AttributeError:
        raise TypeError("%s must be an integer, not %s"
                        % (name, type(n).__name__)) from None
    if v < 0:
        raise errors.InvalidArgument("%s must be >= 0 (got %d)" % (name, v))
    if v >= 1 << 64:
        raise errors.Overflow("%s is too large (%d)" % (name, v))
    return v
