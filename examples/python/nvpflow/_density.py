# SPDX-License-Identifier: MIT
"""A Python log density as the library's nvp_log_density_fn callback.

The reverse-KL calls call the target's log density from C, in the middle
of the call.  A Python exception must not unwind through the C frames
(ctypes would only print it and hand C an undefined return value), so the
trampoline catches it, returns CALLBACK_FAILED, which stops the C call,
and the caller raises the original exception once the call has returned.
"""
import ctypes

from . import _arrays, _lib, errors

# What the trampoline returns when the Python function failed: positive,
# so never one of the NVP_E* codes (all negative), as the header asks.
CALLBACK_FAILED = 1


class LogDensity:
    """Wraps fn(y) -> (log_p, dlogp_dy) for one library call: .fn is the
    ctypes callback (kept alive by this object for the call's duration);
    .check(rc) raises what the call or the Python function reported."""

    def __init__(self, fn, dim, what):
        if not callable(fn):
            raise TypeError("%s: log_density must be callable, not %s"
                            % (what, type(fn).__name__))
        self._py = fn
        self._dim = dim
        self._what = what
        self.error = None
        self.fn = _lib.LOG_DENSITY_FN(self._trampoline)

    def _rows(self, y, n, d):
        """The n x d rows at y as the user's function takes them: a fresh
        numpy array (C's buffer is reused after the callback returns, so
        no view of it is handed out), or a list of rows."""
        if _arrays.np is not None:
            return _arrays.np.ctypeslib.as_array(y, shape=(n, d)).copy()
        flat = y[:n * d]
        return [flat[i * d:(i + 1) * d] for i in range(n)]

    def _trampoline(self, user, n, d, y, log_p, dlogp_dy):
        try:
            if d != self._dim:
                raise errors.DimensionError(
                    "%s: the library passed rows of %d values, the chain has "
                    "%d" % (self._what, d, self._dim))
            out = self._py(self._rows(y, n, d))
            try:
                lp, g = out
            except (TypeError, ValueError):
                raise TypeError(
                    "%s: log_density must return (log_p, dlogp_dy), got %s"
                    % (self._what, type(out).__name__)) from None
            lp_ptr, lp_keep = _arrays.vec_in(lp, n, "log_p")
            m, g_ptr, g_keep = _arrays.rows_in(g, d, "dlogp_dy")
            if m != n:
                raise errors.DimensionError(
                    "dlogp_dy: %d rows for a batch of %d" % (m, n))
            ctypes.memmove(log_p, lp_ptr, 4 * n)
            ctypes.memmove(dlogp_dy, g_ptr, 4 * n * d)
            del lp_keep, g_keep
            return 0
        except BaseException as e:
            # KeyboardInterrupt and SystemExit too: check() raises them
            # again, unchanged, once C has returned.
            self.error = e
            return CALLBACK_FAILED

    def check(self, rc, handle_errmsg=None):
        """After the C call: the Python function's exception if it raised
        (the call then stopped because of it), else the library's error."""
        err, self.error = self.error, None
        if err is not None:
            try:
                raise err
            finally:
                del err  # no reference cycle through the traceback
        errors.check(rc, handle_errmsg=handle_errmsg)
