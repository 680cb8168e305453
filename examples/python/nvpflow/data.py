# SPDX-License-Identifier: MIT
"""Toy data (two moons) and the per-axis standardiser."""
from ctypes import byref, c_int

from . import _arrays, _lib, _names, errors
from ._handle import Handle, out_handle
from .rng import as_rng


def two_moons(n, noise=0.05, rng=None, seed=None):
    """The two-moons set (as scikit-learn's make_moons), shuffled:
    returns (xy, labels) with xy n x 2 and labels 0 (outer moon) or 1
    (inner moon).  Draws from `rng` (an Rng), or from a fresh Rng(seed)."""
    n = _arrays.count(n)
    r, owned = as_rng(rng, seed)
    try:
        xy = _arrays.RowsOut(n, 2)
        labels = _arrays.VecOut(n, ctype=c_int)
        rc = _lib.lib.nvp_two_moons(r._h, n, float(noise), xy.ptr,
                                    labels.ptr)
        r._check(rc)
        return xy.result(), labels.result()
    finally:
        if owned:
            r.close()


class Scaler(Handle):
    """Per-axis standardiser z = (x - mean) / sd (population sd; an axis
    with sd 0 keeps sd 1).  A fresh scaler is the identity."""

    _free_name = "nvp_scaler_free"
    _errmsg_name = "nvp_scaler_errmsg"

    def __init__(self, dim):
        out = out_handle()
        errors.check(_lib.lib.nvp_scaler_create(
            byref(out), _arrays.count(dim, "dim"), None))
        self._adopt(out)

    @property
    def dim(self):
        return _lib.lib.nvp_scaler_dim(self._h)

    def _describe(self):
        return "dim=%d" % self.dim

    def fit(self, x):
        """Estimates mean and sd from the rows of x; returns self.
        NonFinite (scaler unchanged) when x holds NaN or an infinity."""
        h = self._h
        n, ptr, keep = _arrays.rows_in(x, self.dim, "x")
        self._check(_lib.lib.nvp_scaler_fit(h, n, ptr))
        del keep
        return self

    def _map(self, fn, x, name):
        h = self._h
        d = self.dim
        n, ptr, keep = _arrays.rows_in(x, d, name)
        out = _arrays.RowsOut(n, d)
        self._check(fn(h, n, ptr, out.ptr))
        del keep
        return out.result()

    def transform(self, x):
        """(x - mean) / sd, as a new array."""
        return self._map(_lib.lib.nvp_scaler_transform, x, "x")

    def inverse_transform(self, z):
        """z * sd + mean, as a new array."""
        return self._map(_lib.lib.nvp_scaler_inverse_transform, z, "z")

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def _get(self):
        h = self._h
        d = self.dim
        mean, sd = _arrays.VecOut(d), _arrays.VecOut(d)
        self._check(_lib.lib.nvp_scaler_get(h, d, mean.ptr, sd.ptr))
        return mean.result(), sd.result()

    @property
    def mean(self):
        """A copy of the per-axis means."""
        return self._get()[0]

    @property
    def sd(self):
        """A copy of the per-axis standard deviations."""
        return self._get()[1]

    def set(self, mean, sd):
        """Sets mean and sd (dim values each; sd finite and > 0)."""
        h = self._h
        d = self.dim
        mp, mk = _arrays.vec_in(mean, d, "mean")
        sp, sk = _arrays.vec_in(sd, d, "sd")
        self._check(_lib.lib.nvp_scaler_set(h, d, mp, sp))
        del mk, sk

    @property
    def column_names(self):
        """The axes' names (a list of str), or None.  A conditional model's
        file (nvpflow fit --given) names its scaler's context axes, which
        come after the modelled ones."""
        h = self._h
        return _names.read(lambda j: _lib.lib.nvp_scaler_column_name(h, j),
                           self.dim)

    def set_column_names(self, names):
        """Names for the dim axes (rules as Chain.set_column_names); None
        removes them."""
        if names is None:
            self._check(_lib.lib.nvp_scaler_set_column_names(self._h, 0,
                                                             None))
            return
        arr, bufs = _names.encode(list(names))
        self._check(_lib.lib.nvp_scaler_set_column_names(
            self._h, len(bufs), arr))

    @property
    def log_det(self):
        """sum_i log(sd_i): subtract it from a log density of standardised
        data to get the density in the original units."""
        return _lib.lib.nvp_scaler_log_det(self._h)
