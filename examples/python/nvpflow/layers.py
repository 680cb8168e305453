# SPDX-License-Identifier: MIT
"""Layers of every kind, the building blocks of Chain.from_layers.

    import nvpflow
    layers = [nvpflow.Linear(3), nvpflow.ActNorm(3),
              nvpflow.Coupling(3, hidden=(64, 64), zero_init=True, seed=1),
              nvpflow.Permutation(3, seed=2),
              nvpflow.Coupling(3, hidden=(64, 64), zero_init=True, seed=3)]
    flow = nvpflow.Chain.from_layers(layers).init_from_data(data)

Permutation, ActNorm, Linear and Coupling each own one C layer until a
Chain takes it: Chain.from_layers(layers) moves every layer into the new
chain, after which the Python object no longer holds it (any use raises
ClosedError, closing or collecting it frees nothing); chain.layer(k) then
gives a read-only view of it.  A failed Chain.from_layers takes nothing.
"""
import ctypes
from ctypes import byref, c_float, c_size_t

from . import _arrays, _lib, errors
from ._handle import ChainOwnable, out_handle
from .rng import as_rng

# The conditioner of Coupling and Chain.alternating unless told otherwise.
DEFAULT_HIDDEN = (512, 512)

KIND_COUPLING = "affine coupling"
KIND_PERMUTATION = "permutation"
KIND_ACTNORM = "actnorm"
KIND_LINEAR = "linear"


def _hidden_arg(hidden):
    """(n_hidden, size_t array or None) for the C constructors: None is
    the library default (2 x 512), () an affine conditioner."""
    if hidden is None:
        return 0, None
    widths = [_arrays.count(w, "hidden width") for w in hidden]
    # A non-NULL pointer even for () (the affine conditioner).
    return len(widths), (c_size_t * max(len(widths), 1))(*widths)


def _forward_backward(h, dims, check, x, dy, dlogdet, what, plain=None,
                      given=None, context=None):
    """The vector-Jacobian product of a forward map, a chain's or a
    layer's (their C calls have the same form): `plain` (h, n, x, dy,
    dlogdet, dx, grad) gives (dL/dx, dL/dparameters), `given` (h, n, x,
    context, dy, dlogdet, dx, dcontext, grad) also dL/dcontext in the
    middle.  dims = (dim, context_dim, num_params).  The C call adds into
    grad: a zero vector makes it the gradient of this loss alone."""
    dim, cdim, num_params = dims
    n, xp, xk = _arrays.rows_in(x, dim, "x")
    m, dyp, dyk = _arrays.rows_in(dy, dim, "dy")
    if m != n:
        raise errors.DimensionError("%s: dy has %d rows, x %d"
                                    % (what, m, n))
    dlp, dlk = (None, None) if dlogdet is None else \
        _arrays.vec_in(dlogdet, n, "dlogdet")
    dx = _arrays.RowsOut(n, dim)
    grad = _arrays.VecOut(num_params, kind="array", zeros=True)
    if given is None:
        check(plain(h, n, xp, dyp, dlp, dx.ptr, grad.ptr))
        del xk, dyk, dlk
        return dx.result(), grad.result()
    cp, ck = _arrays.context_rows(context, n, cdim)
    dc = _arrays.RowsOut(n, cdim)
    check(given(h, n, xp, cp, dyp, dlp, dx.ptr, dc.ptr if cdim else None,
                grad.ptr))
    del xk, dyk, dlk, ck
    return dx.result(), dc.result(), grad.result()


class _LayerOps:
    """What every layer offers, owned or viewed: subclasses provide _lh
    (the live nvp_layer pointer) and _lcheck(rc)."""

    @property
    def kind(self):
        """"affine coupling", "permutation", "actnorm" or "linear"."""
        return _lib.decode(_lib.lib.nvp_layer_kind(self._lh))

    @property
    def dim(self):
        return _lib.lib.nvp_layer_dim(self._lh)

    @property
    def num_params(self):
        return _lib.lib.nvp_layer_num_params(self._lh)

    @property
    def is_coupling(self):
        return bool(_lib.lib.nvp_layer_as_coupling(self._lh))

    @property
    def params(self):
        """A copy of the layer's parameters (numpy float32, or
        array.array('f') without numpy); empty for a permutation."""
        h = self._lh
        n = _lib.lib.nvp_layer_num_params(h)
        out = _arrays.VecOut(n, kind="array")
        self._lcheck(_lib.lib.nvp_layer_get_params(h, n, out.ptr))
        return out.result()

    def _map(self, fn, x, name):
        h = self._lh
        d = _lib.lib.nvp_layer_dim(h)
        n, ptr, keep = _arrays.rows_in(x, d, name)
        out = _arrays.RowsOut(n, d)
        ld = _arrays.VecOut(n)
        self._lcheck(fn(h, n, ptr, out.ptr, ld.ptr))
        del keep
        return out.result(), ld.result()

    def forward(self, x):
        """Base -> data direction: (y, log|det dy/dx| per row)."""
        return self._map(_lib.lib.nvp_layer_forward, x, "x")

    def inverse(self, y):
        """Data -> base direction: (x, log|det dx/dy| per row)."""
        return self._map(_lib.lib.nvp_layer_inverse, y, "y")

    def inverse_backward(self, y, dx, dildj=None):
        """The vector-Jacobian product of the inverse direction: for a
        scalar L of x, ildj = inverse(y), given dx = dL/dx (n x dim) and
        dildj = dL/dildj (n values; None means zero), returns (dL/dy,
        dL/dparameters)."""
        h = self._lh
        d = _lib.lib.nvp_layer_dim(h)
        n, yp, yk = _arrays.rows_in(y, d, "y")
        m, dxp, dxk = _arrays.rows_in(dx, d, "dx")
        if m != n:
            raise errors.DimensionError("inverse_backward: dx has %d rows, "
                                        "y %d" % (m, n))
        dlp, dlk = (None, None) if dildj is None else \
            _arrays.vec_in(dildj, n, "dildj")
        dy = _arrays.RowsOut(n, d)
        grad = _arrays.VecOut(_lib.lib.nvp_layer_num_params(h), kind="array",
                              zeros=True)
        self._lcheck(_lib.lib.nvp_layer_inverse_backward(
            h, n, yp, dxp, dlp, dy.ptr, grad.ptr))
        del yk, dxk, dlk
        return dy.result(), grad.result()

    def _dims(self):
        h = self._lh
        return (_lib.lib.nvp_layer_dim(h), _lib.lib.nvp_layer_context_dim(h),
                _lib.lib.nvp_layer_num_params(h))

    def forward_backward(self, x, dy, dlogdet=None):
        """The vector-Jacobian product of the forward direction: for a
        scalar L of y, logdet = forward(x), given dy = dL/dy (n x dim) and
        dlogdet = dL/dlogdet (n values; None means zero), returns (dL/dx,
        dL/dparameters).  The forward is recomputed from x."""
        return _forward_backward(self._lh, self._dims(), self._lcheck, x,
                                 dy, dlogdet, "forward_backward",
                                 plain=_lib.lib.nvp_layer_forward_backward)

    # ------------------------------------------ layers reading a context
    @property
    def context_dim(self):
        """Context values per row the layer reads: a conditional
        coupling's context_dim, 0 for every other layer."""
        return _lib.lib.nvp_layer_context_dim(self._lh)

    def _map_given(self, fn, x, context, name):
        h = self._lh
        d = _lib.lib.nvp_layer_dim(h)
        n, ptr, keep = _arrays.rows_in(x, d, name)
        cp, ck = _arrays.context_rows(context, n,
                                      _lib.lib.nvp_layer_context_dim(h))
        out = _arrays.RowsOut(n, d)
        ld = _arrays.VecOut(n)
        self._lcheck(fn(h, n, ptr, cp, out.ptr, ld.ptr))
        del keep, ck
        return out.result(), ld.result()

    def forward_given(self, x, context):
        """forward for a layer that reads a context (rows of context_dim
        values, row i conditioning row i): (y, log|det dy/dx| per row)."""
        return self._map_given(_lib.lib.nvp_layer_forward_given, x, context,
                               "x")

    def inverse_given(self, y, context):
        """inverse given the context: (x, log|det dx/dy| per row)."""
        return self._map_given(_lib.lib.nvp_layer_inverse_given, y, context,
                               "y")

    def inverse_backward_given(self, y, context, dx, dildj=None):
        """inverse_backward given the context: (dL/dy, dL/dcontext,
        dL/dparameters)."""
        h = self._lh
        d = _lib.lib.nvp_layer_dim(h)
        cdim = _lib.lib.nvp_layer_context_dim(h)
        n, yp, yk = _arrays.rows_in(y, d, "y")
        cp, ck = _arrays.context_rows(context, n, cdim)
        m, dxp, dxk = _arrays.rows_in(dx, d, "dx")
        if m != n:
            raise errors.DimensionError("inverse_backward_given: dx has %d "
                                        "rows, y %d" % (m, n))
        dlp, dlk = (None, None) if dildj is None else \
            _arrays.vec_in(dildj, n, "dildj")
        dy = _arrays.RowsOut(n, d)
        dc = _arrays.RowsOut(n, cdim)
        grad = _arrays.VecOut(_lib.lib.nvp_layer_num_params(h), kind="array",
                              zeros=True)
        self._lcheck(_lib.lib.nvp_layer_inverse_backward_given(
            h, n, yp, cp, dxp, dlp, dy.ptr, dc.ptr if cdim else None,
            grad.ptr))
        del yk, ck, dxk, dlk
        return dy.result(), dc.result(), grad.result()

    def forward_backward_given(self, x, context, dy, dlogdet=None):
        """forward_backward given the context: (dL/dx, dL/dcontext,
        dL/dparameters)."""
        return _forward_backward(
            self._lh, self._dims(), self._lcheck, x, dy, dlogdet,
            "forward_backward_given", context=context,
            given=_lib.lib.nvp_layer_forward_backward_given)

    # ------------------------------------------- kind-specific queries
    def _coupling(self, what):
        c = _lib.lib.nvp_layer_as_coupling(self._lh)
        if not c:
            raise TypeError("%s: this is a %s layer, not an affine coupling"
                            % (what, self.kind))
        return c

    @property
    def mask(self):
        """An affine coupling's mask (list of 0 and 1; 1 = passed through
        and conditioned on)."""
        c = self._coupling("mask")
        d = self.dim
        buf = (ctypes.c_ubyte * d)()
        self._lcheck(_lib.lib.nvp_coupling_get_mask(
            c, d, ctypes.cast(buf, ctypes.c_void_p)))
        return list(buf)

    @property
    def hidden(self):
        """An affine coupling's hidden widths (a tuple; () is affine)."""
        c = self._coupling("hidden")
        n = c_size_t(0)
        self._lcheck(_lib.lib.nvp_coupling_get_hidden(c, 0, None, byref(n)))
        widths = (c_size_t * max(n.value, 1))()
        self._lcheck(_lib.lib.nvp_coupling_get_hidden(c, n.value, widths,
                                                      byref(n)))
        return tuple(widths[:n.value])

    @property
    def log_scale_clamp(self):
        """An affine coupling's log-scale bound c (0.0 = off)."""
        return _lib.lib.nvp_coupling_log_scale_clamp(
            self._coupling("log_scale_clamp"))

    @property
    def affine_form(self):
        """An affine coupling's form: AFFINE_EXP (y_b = x_b exp(log_scale)
        + shift, the default) or AFFINE_SIGMOID (nflows' AffineCoupling-
        Transform: x_b = y_b s + shift data to base, s = sigmoid(h + 2) +
        1e-3)."""
        return _lib.lib.nvp_coupling_affine_form(self._coupling("affine_form"))

    @property
    def perm(self):
        """A permutation layer's indices: y[i] = x[perm[i]]."""
        if self.kind != KIND_PERMUTATION:
            raise TypeError("perm: this is a %s layer, not a permutation"
                            % self.kind)
        d = self.dim
        y, _ = self.forward([[float(i) for i in range(d)]])
        return [int(v) for v in _arrays_row(y)]

    def _describe_layer(self):
        return "%s dim=%d params=%d" % (self.kind, self.dim, self.num_params)


def _arrays_row(rows):
    """The first row of a RowsOut result (numpy or lists)."""
    return list(rows[0])


class Layer(ChainOwnable, _LayerOps):
    """A layer the caller owns: Permutation, ActNorm, Linear or Coupling.
    Chain.from_layers moves it into a chain."""

    _free_name = "nvp_layer_free"
    _errmsg_name = "nvp_layer_errmsg"
    _taken_hint = "Chain.from_layers took it; use chain.layer(k)"

    def __init__(self, *args, **kwargs):
        raise TypeError("use Permutation, ActNorm, Linear or Coupling")

    @property
    def _lh(self):
        return self._h

    def _lcheck(self, rc):
        self._check(rc)

    @property
    def kernels(self):
        """The kernel level of the layer's own calls (a chain's calls use
        the chain's); never KERNELS_AUTO."""
        return _lib.lib.nvp_layer_kernels(self._h)

    def set_kernels(self, kernels):
        """KERNELS_AUTO / _PORTABLE / _AVX2 / _AVX512 or their names;
        Unsupported when the CPU lacks the level."""
        self._check(_lib.lib.nvp_layer_set_kernels(
            self._h, _lib.kernels_arg(kernels)))

    def _describe(self):
        return self._describe_layer()

    def set_params(self, values):
        """Replaces the layer's parameters; NonFinite (and no change) for
        NaN or infinite values."""
        h = self._h
        n = _lib.lib.nvp_layer_num_params(h)
        if n == 0:
            ptr, keep = _arrays.vec_in(values, 0, "params")
            ptr = (c_float * 1)()   # the library wants a pointer even so
        else:
            ptr, keep = _arrays.vec_in(values, n, "params")
        self._check(_lib.lib.nvp_layer_set_params(h, n, ptr))
        del keep


# The mixin's read-only property, with a setter for layers the caller owns.
Layer.params = property(_LayerOps.params.fget, Layer.set_params,
                        doc=_LayerOps.params.__doc__)


class Permutation(Layer):
    """y[i] = x[perm[i]]: no parameters, log-det 0.  Between couplings it
    lets every dimension condition every other.

    Permutation(dim, perm=None, rng=None, seed=None): the given perm (a
    permutation of 0..dim-1; dim may then be None), or one drawn uniformly
    from rng (an Rng, advanced) or from a fresh Rng(seed)."""

    def __init__(self, dim=None, perm=None, rng=None, seed=None):
        out = out_handle()
        if perm is not None:
            idx = [_arrays.count(i, "perm entry") for i in perm]
            if dim is None:
                dim = len(idx)
            dim = _arrays.count(dim, "dim")
            if len(idx) != dim:
                raise errors.DimensionError("Permutation: perm has %d "
                                            "entries, dim is %d"
                                            % (len(idx), dim))
            arr = (c_size_t * max(dim, 1))(*idx)
            errors.check(_lib.lib.nvp_layer_create_permutation(
                byref(out), dim, arr, None))
        else:
            if dim is None:
                raise TypeError("Permutation needs dim or perm")
            dim = _arrays.count(dim, "dim")
            r, owned = as_rng(rng, seed)
            try:
                errors.check(_lib.lib.nvp_layer_create_random_permutation(
                    byref(out), dim, r._h, None), handle_errmsg=r._errmsg)
            finally:
                if owned:
                    r.close()
        self._adopt(out)


class ActNorm(Layer):
    """y = x * exp(s) + b per dimension, parameters s (dim) then b (dim);
    starts as the identity.  Chain.init_from_data sets it to standardise
    what reaches it."""

    def __init__(self, dim):
        out = out_handle()
        errors.check(_lib.lib.nvp_layer_create_actnorm(
            byref(out), _arrays.count(dim, "dim"), None))
        self._adopt(out)


class Linear(Layer):
    """y = L U x + b, LU-parameterised (parameters: a dim x dim matrix
    holding L below its diagonal, U above it and log-diagonal d on it, then
    b); starts as the identity.  Chain.init_from_data sets it to whiten
    what reaches it."""

    def __init__(self, dim):
        out = out_handle()
        errors.check(_lib.lib.nvp_layer_create_linear(
            byref(out), _arrays.count(dim, "dim"), None))
        self._adopt(out)


class Coupling(Layer):
    """An affine coupling layer.

    Coupling(dim, mask=None, hidden=(512, 512), flip=False,
             zero_init=False, rng=None, seed=None, log_scale_clamp=0.0)

    mask: dim values, 1 = passed through and conditioned on, with at least
    one 0 and one 1; None gives the half split (conditions on the first
    dim // 2 dimensions, or with flip=True on the others).  hidden: the
    conditioner's hidden widths (None: the library default; (): affine).
    zero_init: the output layer starts at zero, so the layer starts as the
    identity.  Initial parameters come from rng, or a fresh Rng(seed).
    context_dim > 0: a conditional coupling, whose conditioner also reads
    context_dim values per row (called through the *_given methods, or in
    a chain through the chain's)."""

    _cp = None

    def __init__(self, dim, mask=None, hidden=DEFAULT_HIDDEN, flip=False,
                 zero_init=False, rng=None, seed=None, log_scale_clamp=0.0,
                 context_dim=0):
        dim = _arrays.count(dim, "dim")
        context_dim = _arrays.count(context_dim, "context_dim")
        if context_dim and mask is None:
            # The half split nvp_coupling_create_half would give (the
            # conditional constructor takes a mask only).
            half = dim // 2
            mask = [int((i < half) != bool(flip)) for i in range(dim)]
        n_hidden, hp = _hidden_arg(hidden)
        flags = _lib.INIT_ZERO_OUTPUT if zero_init else 0
        r, owned = as_rng(rng, seed)
        out = out_handle()
        try:
            if mask is None:
                errors.check(_lib.lib.nvp_coupling_create_half(
                    byref(out), dim, 1 if flip else 0, n_hidden, hp, flags,
                    r._h, None), handle_errmsg=r._errmsg)
            else:
                m = [int(v) for v in mask]
                if len(m) != dim:
                    raise errors.DimensionError("Coupling: mask has %d "
                                                "values, dim is %d"
                                                % (len(m), dim))
                if any(v not in (0, 1) for v in m):
                    raise errors.InvalidArgument("Coupling: mask values "
                                                 "must be 0 or 1")
                buf = (ctypes.c_ubyte * max(dim, 1))(*m)
                if context_dim:
                    errors.check(_lib.lib.nvp_coupling_create_conditional(
                        byref(out), dim, context_dim,
                        ctypes.cast(buf, ctypes.c_void_p), n_hidden, hp,
                        flags, r._h, None), handle_errmsg=r._errmsg)
                else:
                    errors.check(_lib.lib.nvp_coupling_create(
                        byref(out), dim, ctypes.cast(buf, ctypes.c_void_p),
                        n_hidden, hp, flags, r._h, None),
                        handle_errmsg=r._errmsg)
        finally:
            if owned:
                r.close()
        cp = out.value
        self._adopt(_lib.lib.nvp_coupling_as_layer(cp))
        self._cp = ctypes.c_void_p(cp)
        if log_scale_clamp:
            try:
                self.set_log_scale_clamp(log_scale_clamp)
            except BaseException:
                self.close()
                raise

    @property
    def _c(self):
        """The live nvp_coupling pointer (the same object as the layer)."""
        self._h
        return self._cp

    def set_log_scale_clamp(self, bound):
        """log_scale = c * tanh(raw / c); 0 turns it off."""
        self._check(_lib.lib.nvp_coupling_set_log_scale_clamp(
            self._c, float(bound)))

    def set_affine_form(self, form):
        """AFFINE_EXP or AFFINE_SIGMOID (see affine_form); only before a
        chain takes the layer."""
        self._check(_lib.lib.nvp_coupling_set_affine_form(self._c,
                                                          int(form)))

    @property
    def kernels(self):
        """The kernel level of the layer's own calls (a chain's calls use
        the chain's); never KERNELS_AUTO."""
        return _lib.lib.nvp_coupling_kernels(self._c)

    def set_kernels(self, kernels):
        """KERNELS_AUTO / _PORTABLE / _AVX2 / _AVX512 or their names;
        Unsupported when the CPU lacks the level."""
        self._check(_lib.lib.nvp_coupling_set_kernels(
            self._c, _lib.kernels_arg(kernels)))


class LayerView(_LayerOps):
    """Read-only view of layer k of a Chain (chain.layer(k)); valid while
    the chain is open (ClosedError after chain.close())."""

    def __init__(self, chain, k):
        self._chain = chain
        self._k = k

    @property
    def index(self):
        return self._k

    @property
    def _lh(self):
        p = _lib.lib.nvp_chain_layer(self._chain._h, self._k, None)
        if not p:
            raise IndexError("layer %d is out of range" % self._k)
        return ctypes.c_void_p(p)

    def _lcheck(self, rc):
        if rc != _lib.OK:
            p = _lib.lib.nvp_chain_layer(self._chain._h, self._k, None)
            raise errors.error_for(
                rc, handle_errmsg=lambda: _lib.decode(
                    _lib.lib.nvp_layer_errmsg(p)))

    @property
    def offset(self):
        """Where the layer's parameters start in the chain's params."""
        off = c_size_t(0)
        if not _lib.lib.nvp_chain_layer(self._chain._h, self._k, byref(off)):
            raise IndexError("layer %d is out of range" % self._k)
        return off.value

    def __repr__(self):
        if self._chain.closed:
            return "<LayerView %d of a closed Chain>" % self._k
        return "<LayerView %d: %s>" % (self._k, self._describe_layer())


__all__ = ["ActNorm", "Coupling", "Layer", "LayerView", "Linear",
           "Permutation"]
