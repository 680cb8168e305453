# SPDX-License-Identifier: MIT
"""Base distributions: the standard normal N(0, I) and mixtures of
Gaussians with full covariances (given, or fitted by EM)."""
import ctypes
from ctypes import byref

from . import _arrays, _lib, errors
from ._handle import ChainOwnable, out_handle
from .rng import _rng_arg


def _row_dim(x, name):
    """The length of the first row of x (rows as a sequence or a 2-D
    array)."""
    try:
        return len(x[0])
    except (TypeError, IndexError, KeyError):
        raise errors.DimensionError(
            "%s: expected rows (a sequence of rows or a 2-D array)"
            % name) from None


def _matrices_in(covs, k, dim):
    """k dim x dim matrices (a (k, dim, dim) array or nested sequences)
    as (pointer, keepalive) to k * dim * dim floats."""
    np = _arrays.np
    if np is not None and not isinstance(covs, (list, tuple)):
        a = np.asarray(covs)
        if a.shape != (k, dim, dim):
            raise errors.DimensionError(
                "covs: expected shape (%d, %d, %d), got %s"
                % (k, dim, dim, tuple(a.shape)))
        _, ptr, keep = _arrays.rows_in(a.reshape(k * dim, dim), dim, "covs")
        return ptr, keep
    try:
        mats = list(covs)
    except TypeError:
        raise TypeError("covs must be a sequence of %d matrices" % k) \
            from None
    if len(mats) != k:
        raise errors.DimensionError("covs: %d matrices for %d components"
                                    % (len(mats), k))
    rows = []
    for c, m in enumerate(mats):
        try:
            m = list(m)
        except TypeError:
            raise errors.DimensionError("covs[%d] is not a matrix" % c) \
                from None
        if len(m) != dim:
            raise errors.DimensionError("covs[%d]: %d rows, expected %d"
                                        % (c, len(m), dim))
        rows.extend(m)
    _, ptr, keep = _arrays.rows_in(rows, dim, "covs")
    return ptr, keep


_KINDS = {1: "normal", 2: "mixture"}  # NVP_BASE_NORMAL, NVP_BASE_MIXTURE


class _BaseOps:
    """What every base offers, owned or viewed: subclasses provide _bh
    (the live nvp_base pointer) and _bcheck(rc)."""

    @property
    def dim(self):
        return _lib.lib.nvp_base_dim(self._bh)

    @property
    def kind(self):
        """"normal" (N(0, I)) or "mixture" (a Gaussian mixture, also one
        of a single component)."""
        return _KINDS.get(_lib.lib.nvp_base_kind(self._bh), "unknown")

    @property
    def components(self):
        """Number of mixture components: 1 for N(0, I)."""
        return _lib.lib.nvp_base_components(self._bh)

    def _describe_base(self):
        return "%s dim=%d components=%d" % (self.kind, self.dim,
                                            self.components)

    def sample(self, n, rng):
        """n draws (n x dim).  rng: an Rng or an int seed."""
        h = self._bh
        n = _arrays.count(n)
        r, owned = _rng_arg(rng, "sample")
        try:
            x = _arrays.RowsOut(n, _lib.lib.nvp_base_dim(h))
            self._bcheck(_lib.lib.nvp_base_sample(h, r._h, n, x.ptr))
        finally:
            if owned:
                r.close()
        return x.result()

    def log_prob(self, x):
        """Log density of each row of x (n values; NaN for a row holding
        NaN or an infinity)."""
        h = self._bh
        n, ptr, keep = _arrays.rows_in(x, _lib.lib.nvp_base_dim(h), "x")
        lp = _arrays.VecOut(n)
        self._bcheck(_lib.lib.nvp_base_log_prob(h, n, ptr, lp.ptr))
        del keep
        return lp.result()

    def log_prob_grad(self, x):
        """d log p / dx of each row of x (n x dim)."""
        h = self._bh
        d = _lib.lib.nvp_base_dim(h)
        n, ptr, keep = _arrays.rows_in(x, d, "x")
        g = _arrays.RowsOut(n, d)
        self._bcheck(_lib.lib.nvp_base_log_prob_grad(h, n, ptr, g.ptr))
        del keep
        return g.result()

    def clone(self):
        """A new Base equal to this one, owned by the caller (for a view:
        a copy of the chain's base that outlives it)."""
        h = self._bh
        out = out_handle()
        self._bcheck(_lib.lib.nvp_base_clone(h, byref(out), None))
        return Base._wrap(out)


class Base(ChainOwnable, _BaseOps):
    """A base distribution the caller owns: Base.normal(dim),
    Base.mixture(weights, means, covs) or Base.fit_mixture(x, k, rng).
    Chain.set_base moves it into a chain."""

    _free_name = "nvp_base_free"
    _errmsg_name = "nvp_base_errmsg"
    _taken_hint = "Chain.set_base took it; use chain.base"

    def __init__(self, *args, **kwargs):
        raise TypeError("use Base.normal(), Base.mixture() or "
                        "Base.fit_mixture()")

    @classmethod
    def normal(cls, dim):
        """N(0, I) over dim dimensions."""
        out = out_handle()
        errors.check(_lib.lib.nvp_base_create_normal(
            byref(out), _arrays.count(dim, "dim"), None))
        return cls._wrap(out)

    @classmethod
    def mixture(cls, weights, means, covs):
        """A mixture of k = len(weights) Gaussians: weights (k positive
        numbers, normalised to sum 1), means (k x dim) and covs (k x dim x
        dim, each symmetric positive definite).  All are copied.
        InvalidArgument for a weight that is not positive, a non-finite
        value, or a covariance that is not symmetric positive definite;
        DimensionError when the shapes disagree."""
        k = len(weights)
        lib = _lib.lib
        out = out_handle()
        if k == 0:  # the library names the error
            none = (ctypes.c_float * 1)()
            errors.check(lib.nvp_base_create_mixture(
                byref(out), 0, 0, none, none, none, None))
        wp, wk = _arrays.vec_in(weights, k, "weights")
        dim = _row_dim(means, "means")
        n, mp, mk = _arrays.rows_in(means, dim, "means")
        if n != k:
            raise errors.DimensionError("means: %d rows for %d components"
                                        % (n, k))
        cp, ck = _matrices_in(covs, k, dim)
        errors.check(lib.nvp_base_create_mixture(byref(out), dim, k, wp, mp,
                                                 cp, None))
        del wk, mk, ck
        return cls._wrap(out)

    @classmethod
    def fit_mixture(cls, x, k, rng, dim=None):
        """A k-component mixture with full covariances fitted to the rows
        of x by EM (k-means++ seeds drawn from rng, an Rng or an int
        seed); the same rows and generator state give the same base.  dim
        defaults to the length of x's first row (give it for a flat
        buffer).  InvalidArgument when x has fewer than k rows or k is out
        of range (1 to 64), NonFinite when x holds NaN or an infinity."""
        if dim is None:
            dim = _row_dim(x, "x")
        dim = _arrays.count(dim, "dim")
        k = _arrays.count(k, "k")
        if dim == 0:
            raise errors.InvalidArgument("fit_mixture: dim must be >= 1")
        n, ptr, keep = _arrays.rows_in(x, dim, "x")
        r, owned = _rng_arg(rng, "fit_mixture")
        try:
            out = out_handle()
            errors.check(_lib.lib.nvp_base_fit_mixture(
                byref(out), n, dim, ptr, k, r._h, None),
                handle_errmsg=r._errmsg)
        finally:
            if owned:
                r.close()
        del keep
        return cls._wrap(out)

    @property
    def _bh(self):
        return self._h

    def _bcheck(self, rc):
        self._check(rc)

    def _describe(self):
        return self._describe_base()



class BaseView(_BaseOps):
    """Read-only view of a Chain's base (chain.base); it follows
    Chain.set_base, and is valid while the chain is open (ClosedError
    after chain.close())."""

    def __init__(self, chain):
        self._chain = chain

    @property
    def _bh(self):
        return ctypes.c_void_p(_lib.lib.nvp_chain_base(self._chain._h))

    def _bcheck(self, rc):
        if rc != _lib.OK:
            p = _lib.lib.nvp_chain_base(self._chain._h)
            raise errors.error_for(
                rc, handle_errmsg=lambda: _lib.decode(
                    _lib.lib.nvp_base_errmsg(p)))

    def __repr__(self):
        if self._chain.closed:
            return "<BaseView of a closed Chain>"
        return "<BaseView %s>" % self._describe_base()


__all__ = ["Base", "BaseView"]
