# SPDX-License-Identifier: MIT
"""The flow: a chain of layers (affine couplings and the other kinds)
over a base distribution (N(0, I), or a Gaussian mixture)."""
from ctypes import byref, c_float, c_void_p

from . import _arrays, _lib, _names, errors
from ._density import LogDensity
from .base import Base, BaseView
from ._handle import Handle, out_handle
from .data import Scaler
from .layers import (DEFAULT_HIDDEN, Layer, LayerView, _forward_backward,
                     _hidden_arg)
from .optim import Adam, _bytes_arg, _path, _save_buffer
from .rng import Rng, _rng_arg, as_rng


class Chain(Handle):
    """A Real-NVP flow: a base distribution (N(0, I) unless set_base
    replaced it) and K layers (affine couplings, permutations, actnorm,
    linear).

    Build one with Chain.alternating(), Chain.from_layers(), Chain.load()
    or Chain.from_bytes().
    Calls that only read the model (sample with your own Rng, log_prob,
    forward, inverse, nll_grad, saving) may run concurrently from several
    threads; training steps and setters need exclusive use."""

    _free_name = "nvp_chain_free"
    _errmsg_name = "nvp_chain_errmsg"

    def __init__(self, *args, **kwargs):
        raise TypeError("use Chain.alternating(), Chain.from_layers(), "
                        "Chain.load() or Chain.from_bytes()")

    # ------------------------------------------------------ construction
    @classmethod
    def alternating(cls, dim, layers=4, hidden=DEFAULT_HIDDEN, seed=None,
                    rng=None, zero_init=False):
        """N(0, I) base and `layers` half-split couplings with alternating
        masks; each conditioner an MLP with the given hidden widths
        (hidden=None: the library default 2 x 512; hidden=(): affine).
        Initial parameters come from `rng`, or from a fresh Rng(seed)."""
        r, owned = as_rng(rng, seed)
        try:
            dim = _arrays.count(dim, "dim")
            layers = _arrays.count(layers, "layers")
            n_hidden, hp = _hidden_arg(hidden)
            flags = _lib.INIT_ZERO_OUTPUT if zero_init else 0
            out = out_handle()
            errors.check(_lib.lib.nvp_chain_create_alternating(
                byref(out), dim, layers, n_hidden, hp, flags, r._h, None),
                handle_errmsg=r._errmsg)
            return cls._wrap(out)
        finally:
            if owned:
                r.close()

    @classmethod
    def conditional(cls, dim, context_dim, layers=4, hidden=DEFAULT_HIDDEN,
                    seed=None, rng=None, zero_init=False):
        """A model of p(y | c): as alternating(), with couplings whose
        conditioners also read context_dim values of context per row.
        Call it through the *_given methods (log_prob_given,
        sample_given_one, train_step_given, ...), which take the context
        as one more argument.  context_dim=0 is alternating()'s chain."""
        r, owned = as_rng(rng, seed)
        try:
            dim = _arrays.count(dim, "dim")
            context_dim = _arrays.count(context_dim, "context_dim")
            layers = _arrays.count(layers, "layers")
            n_hidden, hp = _hidden_arg(hidden)
            flags = _lib.INIT_ZERO_OUTPUT if zero_init else 0
            out = out_handle()
            errors.check(_lib.lib.nvp_chain_create_conditional(
                byref(out), dim, context_dim, layers, n_hidden, hp, flags,
                r._h, None), handle_errmsg=r._errmsg)
            return cls._wrap(out)
        finally:
            if owned:
                r.close()

    @classmethod
    def from_layers(cls, layers):
        """A chain over a N(0, I) base from layers of any kind (Coupling,
        Permutation, ActNorm, Linear), applied in list order going forward
        (base to data).  On success the chain takes every layer: the
        Python objects no longer hold them (use chain.layer(k)).  On
        failure nothing is taken.  A layer may be given only once."""
        layers = list(layers)
        if not layers:
            raise errors.InvalidArgument("Chain.from_layers: no layers")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    "Chain.from_layers: layers[%d] is %s, not a layer "
                    "(Coupling, Permutation, ActNorm or Linear)"
                    % (i, "a LayerView of a chain" if isinstance(
                        layer, LayerView) else type(layer).__name__))
        ptrs = [layer._h.value for layer in layers]  # refuses closed ones
        lib = _lib.lib
        base = out_handle()
        errors.check(lib.nvp_base_create_normal(
            byref(base), lib.nvp_layer_dim(ptrs[0]), None))
        arr = (c_void_p * len(ptrs))(*ptrs)
        out = out_handle()
        rc = lib.nvp_chain_create_from_layers(byref(out), base, len(ptrs),
                                              arr, None)
        if rc != _lib.OK:
            err = errors.error_for(rc)
            lib.nvp_base_free(base)
            raise err
        for layer in layers:
            layer._give_to_chain()
        return cls._wrap(out)

    @classmethod
    def load(cls, path):
        """(chain, scaler or None) from a model file."""
        out, sc = out_handle(), out_handle()
        errors.check(_lib.lib.nvp_chain_load_file(
            byref(out), byref(sc), _path(path), None))
        return cls._wrap_loaded(out, sc)

    @classmethod
    def from_bytes(cls, data):
        """(chain, scaler or None) from bytes made by to_bytes()."""
        ptr, size, keep = _bytes_arg(data)
        out, sc = out_handle(), out_handle()
        errors.check(_lib.lib.nvp_chain_load_buffer(
            byref(out), byref(sc), size, ptr, None))
        del keep
        return cls._wrap_loaded(out, sc)

    @classmethod
    def _wrap_loaded(cls, out, sc):
        scaler = Scaler._wrap(sc) if sc.value else None
        return cls._wrap(out), scaler

    def save(self, path, scaler=None):
        """Writes the model (and the scaler, when given) to path
        atomically."""
        s = scaler._h if scaler is not None else None
        self._check(_lib.lib.nvp_chain_save_file(self._h, s,
                                                 _path(path)))

    def to_bytes(self, scaler=None):
        """The model (and the scaler, when given) as bytes."""
        s = scaler._h if scaler is not None else None
        return _save_buffer(_lib.lib.nvp_chain_save_buffer, self._h, s,
                            self._check)

    # -------------------------------------------------------- properties
    @property
    def dim(self):
        return _lib.lib.nvp_chain_dim(self._h)

    @property
    def context_dim(self):
        """Context values per row (0 for an unconditional chain)."""
        return _lib.lib.nvp_chain_context_dim(self._h)

    @property
    def num_layers(self):
        return _lib.lib.nvp_chain_num_layers(self._h)

    @property
    def num_params(self):
        return _lib.lib.nvp_chain_num_params(self._h)

    def _describe(self):
        return "dim=%d layers=%d params=%d" % (self.dim, self.num_layers,
                                               self.num_params)

    # ------------------------------------------------------------ layers
    def layer(self, k):
        """A read-only view of layer k (0-based; negative counts from the
        end), valid while the chain is open."""
        n = self.num_layers
        k = k.__index__()
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError("layer index out of range (%d layers)" % n)
        return LayerView(self, k)

    @property
    def layers(self):
        """Views of every layer, in order (base to data)."""
        return [LayerView(self, k) for k in range(self.num_layers)]

    # -------------------------------------------------------------- base
    @property
    def base(self):
        """A read-only view of the chain's base distribution (it follows
        set_base); base.clone() copies it."""
        self._h  # refuses a closed chain
        return BaseView(self)

    def set_base(self, base):
        """Replaces the chain's base with `base` (a Base of the chain's
        dim, e.g. Base.fit_mixture of whitened data); the old one is
        freed.  On success the chain takes it: the Base object no longer
        holds it (use chain.base).  On failure (DimensionError,
        InvalidArgument) the chain is unchanged and base keeps its
        handle.  Not while another thread uses the chain."""
        if not isinstance(base, Base):
            raise TypeError(
                "set_base: base is %s, not a Base" % (
                    "a BaseView of a chain (clone() it first)"
                    if isinstance(base, BaseView) else type(base).__name__))
        self._check(_lib.lib.nvp_chain_set_base(self._h, base._h))
        base._give_to_chain()

    @property
    def layer_kinds(self):
        """The kind of every layer, in order: "affine coupling",
        "permutation", "actnorm" or "linear"."""
        h = self._h
        return [_lib.decode(_lib.lib.nvp_layer_kind(
            _lib.lib.nvp_chain_layer(h, k, None)))
            for k in range(_lib.lib.nvp_chain_num_layers(h))]

    def init_from_data(self, data):
        """Data-dependent initialisation: the rows of data walk down the
        chain from data to base, and every ActNorm layer is set to
        standardise, every Linear layer to whiten, the rows that reach it
        (a Linear layer followed by couplings made with zero_init=True
        starts as the full-covariance Gaussian fit of the data).  Needs 2
        or more finite rows; on error nothing changes.  Returns self."""
        h = self._h
        n, ptr, keep = _arrays.rows_in(data, self.dim, "data")
        self._check(_lib.lib.nvp_chain_init_from_data(h, n, ptr))
        del keep
        return self

    @property
    def params(self):
        """A copy of the flat parameter vector (numpy float32, or
        array.array('f') without numpy)."""
        h = self._h
        n = self.num_params
        out = _arrays.VecOut(n, kind="array")
        self._check(_lib.lib.nvp_chain_get_params(h, n, out.ptr))
        return out.result()

    @params.setter
    def params(self, values):
        self.set_params(values)

    def set_params(self, values):
        """Replaces every parameter; NonFinite (and no change) for NaN or
        infinite values."""
        h = self._h
        n = self.num_params
        ptr, keep = _arrays.vec_in(values, n, "params")
        self._check(_lib.lib.nvp_chain_set_params(h, n, ptr))
        del keep

    def _params_ptr(self):
        """The chain's own parameter storage (for Adam.step)."""
        return _lib.lib.nvp_chain_params(self._h)

    @property
    def column_names(self):
        """The columns' names saved with the model (a list of str), or
        None when the chain has none."""
        h = self._h
        return _names.read(lambda j: _lib.lib.nvp_chain_column_name(h, j),
                           self.dim)

    def set_column_names(self, names):
        """Names for the dim columns (str, 1 to 255 UTF-8 bytes each, no
        control characters), saved with the model; None removes them."""
        if names is None:
            self._check(_lib.lib.nvp_chain_set_column_names(self._h, 0, None))
            return
        names = list(names)
        arr, bufs = _names.encode(names)
        self._check(_lib.lib.nvp_chain_set_column_names(
            self._h, len(bufs), arr))

    @property
    def threads(self):
        """Threads the batched calls use (1 = the calling thread only)."""
        return _lib.lib.nvp_chain_threads(self._h)

    def set_threads(self, n_threads):
        """0 = one per online CPU (the default), 1 = no worker threads.
        Results are bitwise identical whatever the count."""
        self._check(_lib.lib.nvp_chain_set_threads(
            self._h, _arrays.count(n_threads, "n_threads")))

    @property
    def kernels(self):
        """The kernel level of every batched call on the chain (one of
        the KERNELS_* constants; never KERNELS_AUTO)."""
        return _lib.lib.nvp_chain_kernels(self._h)

    @property
    def precision(self):
        """The precision of the conditioners' large matrix products:
        PRECISION_FP32 (the default) or PRECISION_BF16."""
        return _lib.lib.nvp_chain_precision(self._h)

    def set_precision(self, precision):
        """PRECISION_FP32 or PRECISION_BF16 (or "fp32", "bf16"): with bf16
        the conditioners' large matrix products round their operands to
        bfloat16 and sum in float, with AVX512-BF16 instructions (faster,
        about 2^-8 relative error per product).  Unsupported (setting
        unchanged) on a CPU without AVX512-BF16; see
        nvpflow.precision_supported."""
        self._check(_lib.lib.nvp_chain_set_precision(
            self._h, _lib.precision_arg(precision)))

    def set_kernels(self, kernels):
        """KERNELS_AUTO (the best this CPU runs, the default),
        KERNELS_PORTABLE (the same bits on every machine), KERNELS_AVX2,
        KERNELS_AVX512, or their names ("auto", ...).  Unsupported (setting
        unchanged) when the CPU lacks the level.  Training steps follow it
        too; an optimizer's update follows its own setting."""
        self._check(_lib.lib.nvp_chain_set_kernels(
            self._h, _lib.kernels_arg(kernels)))

    @property
    def log_scale_clamp(self):
        """The log-scale bound c (0 = off), read from the first affine
        coupling (0.0 when there is none)."""
        h = self._h
        for k in range(_lib.lib.nvp_chain_num_layers(h)):
            c = _lib.lib.nvp_layer_as_coupling(
                _lib.lib.nvp_chain_layer(h, k, None))
            if c:
                return _lib.lib.nvp_coupling_log_scale_clamp(c)
        return 0.0

    def set_log_scale_clamp(self, bound):
        """Every affine coupling uses log_scale = c * tanh(raw / c); 0
        turns it off."""
        self._check(_lib.lib.nvp_chain_set_log_scale_clamp(self._h,
                                                           float(bound)))

    # -------------------------------------------------------- evaluation
    def sample(self, n, rng, with_log_prob=False):
        """n points from the flow (n x dim); with with_log_prob=True,
        (points, log densities).  rng: an Rng or an int seed."""
        h = self._h
        n = _arrays.count(n)
        r, owned = _rng_arg(rng, "sample")
        try:
            y = _arrays.RowsOut(n, self.dim)
            lp = _arrays.VecOut(n) if with_log_prob else None
            self._check(_lib.lib.nvp_chain_sample(
                h, r._h, n, y.ptr, lp.ptr if lp else None))
        finally:
            if owned:
                r.close()
        if with_log_prob:
            return y.result(), lp.result()
        return y.result()

    def log_prob(self, y):
        """Log density of each row of y (n values; NaN for a row holding
        NaN or an infinity)."""
        h = self._h
        n, ptr, keep = _arrays.rows_in(y, self.dim, "y")
        lp = _arrays.VecOut(n)
        self._check(_lib.lib.nvp_chain_log_prob(h, n, ptr, lp.ptr))
        del keep
        return lp.result()

    def _map(self, fn, x, name):
        h = self._h
        d = self.dim
        n, ptr, keep = _arrays.rows_in(x, d, name)
        out = _arrays.RowsOut(n, d)
        ld = _arrays.VecOut(n)
        self._check(fn(h, n, ptr, out.ptr, ld.ptr))
        del keep
        return out.result(), ld.result()

    def forward(self, x):
        """Base -> data: (y, log|det dy/dx| per row)."""
        return self._map(_lib.lib.nvp_chain_forward, x, "x")

    def inverse(self, y):
        """Data -> base: (x, log|det dx/dy| per row)."""
        return self._map(_lib.lib.nvp_chain_inverse, y, "y")

    def forward_trace(self, x):
        """Every stage of the forward pass: (num_layers + 1) x n x dim,
        stage 0 a copy of x, stage k the points after layer k."""
        h = self._h
        d = self.dim
        n, ptr, keep = _arrays.rows_in(x, d, "x")
        out = _arrays.StackOut(self.num_layers + 1, n, d)
        self._check(_lib.lib.nvp_chain_forward_trace(h, n, ptr, out.ptr))
        del keep
        return out.result()

    def nll_grad(self, y):
        """(mean negative log-likelihood of the rows of y, its gradient
        with respect to every parameter).  NonFinite when either is not
        finite."""
        h = self._h
        n, ptr, keep = _arrays.rows_in(y, self.dim, "y")
        grad = _arrays.VecOut(self.num_params, kind="array")
        loss = c_float(0.0)
        self._check(_lib.lib.nvp_chain_nll_grad(h, n, ptr, grad.ptr,
                                                byref(loss)))
        del keep
        return loss.value, grad.result()

    # ---------------------------------------------------------- training
    def train_step(self, adam, rng, data, batch):
        """One Adam step on the mean NLL of `batch` rows drawn from data
        with replacement; returns that minibatch's loss (before the step).
        NonFinite (chain and optimizer unchanged; rng advanced) when the
        loss or gradient is not finite."""
        h = self._h
        if not isinstance(adam, Adam):
            raise TypeError("adam must be an nvpflow.Adam")
        if not isinstance(rng, Rng):
            raise TypeError("rng must be an nvpflow.Rng")
        n, ptr, keep = _arrays.rows_in(data, self.dim, "data")
        loss = c_float(0.0)
        self._check(_lib.lib.nvp_chain_train_step(
            h, adam._h, rng._h, n, ptr, _arrays.count(batch, "batch"),
            byref(loss)))
        del keep
        return loss.value


    # ------------------------------------- conditional densities p(y | c)
    # Each _given method is the method above with a context: rows of
    # context_dim values, row i conditioning row i of the data (None for
    # a chain that reads no context).

    def _context(self, context, n):
        return _arrays.context_rows(context, n, self.context_dim)

    def init_from_data_given(self, data, context):
        """init_from_data for a chain that reads a context: the rows
        walk down the chain with their context.  Returns self."""
        h = self._h
        n, ptr, keep = _arrays.rows_in(data, self.dim, "data")
        cp, ck = self._context(context, n)
        self._check(_lib.lib.nvp_chain_init_from_data_given(h, n, ptr, cp))
        del keep, ck
        return self

    def log_prob_given(self, y, context):
        """log p(y_i | c_i) for each row of y."""
        h = self._h
        n, ptr, keep = _arrays.rows_in(y, self.dim, "y")
        cp, ck = self._context(context, n)
        lp = _arrays.VecOut(n)
        self._check(_lib.lib.nvp_chain_log_prob_given(h, n, ptr, cp, lp.ptr))
        del keep, ck
        return lp.result()

    def sample_given(self, context, rng, with_log_prob=False):
        """One draw y_i ~ p(. | c_i) per row of context (n x dim); with
        with_log_prob=True, (draws, log densities).  rng: an Rng or an int
        seed."""
        h = self._h
        cdim = self.context_dim
        if cdim == 0:
            raise errors.InvalidArgument(
                "sample_given: the chain reads no context (use sample)")
        n, cp, ck = _arrays.rows_in(context, cdim, "context")
        r, owned = _rng_arg(rng, "sample_given")
        try:
            y = _arrays.RowsOut(n, self.dim)
            lp = _arrays.VecOut(n) if with_log_prob else None
            self._check(_lib.lib.nvp_chain_sample_given(
                h, r._h, n, cp, y.ptr, lp.ptr if lp else None))
        finally:
            if owned:
                r.close()
        del ck
        if with_log_prob:
            return y.result(), lp.result()
        return y.result()

    def sample_given_one(self, n, context, rng, with_log_prob=False):
        """n draws from p(. | c) for one context c (context_dim values):
        n x dim; with with_log_prob=True, (draws, log densities)."""
        h = self._h
        n = _arrays.count(n)
        cdim = self.context_dim
        cp, ck = (None, None) if cdim == 0 and context is None else \
            _arrays.vec_in(context, cdim, "context")
        r, owned = _rng_arg(rng, "sample_given_one")
        try:
            y = _arrays.RowsOut(n, self.dim)
            lp = _arrays.VecOut(n) if with_log_prob else None
            self._check(_lib.lib.nvp_chain_sample_given_one(
                h, r._h, n, cp, y.ptr, lp.ptr if lp else None))
        finally:
            if owned:
                r.close()
        del ck
        if with_log_prob:
            return y.result(), lp.result()
        return y.result()

    def _map_given(self, fn, x, context, name):
        h = self._h
        d = self.dim
        n, ptr, keep = _arrays.rows_in(x, d, name)
        cp, ck = self._context(context, n)
        out = _arrays.RowsOut(n, d)
        ld = _arrays.VecOut(n)
        self._check(fn(h, n, ptr, cp, out.ptr, ld.ptr))
        del keep, ck
        return out.result(), ld.result()

    def forward_given(self, x, context):
        """Base -> data given the context: (y, log|det dy/dx| per row)."""
        return self._map_given(_lib.lib.nvp_chain_forward_given, x, context,
                               "x")

    def inverse_given(self, y, context):
        """Data -> base given the context: (x, log|det dx/dy| per row)."""
        return self._map_given(_lib.lib.nvp_chain_inverse_given, y, context,
                               "y")

    def forward_trace_given(self, x, context):
        """forward_trace given the context."""
        h = self._h
        d = self.dim
        n, ptr, keep = _arrays.rows_in(x, d, "x")
        cp, ck = self._context(context, n)
        out = _arrays.StackOut(self.num_layers + 1, n, d)
        self._check(_lib.lib.nvp_chain_forward_trace_given(h, n, ptr, cp,
                                                           out.ptr))
        del keep, ck
        return out.result()

    def nll_grad_given(self, y, context):
        """(mean of -log p(y_i | c_i), its gradient with respect to every
        parameter)."""
        h = self._h
        n, ptr, keep = _arrays.rows_in(y, self.dim, "y")
        cp, ck = self._context(context, n)
        grad = _arrays.VecOut(self.num_params, kind="array")
        loss = c_float(0.0)
        self._check(_lib.lib.nvp_chain_nll_grad_given(h, n, ptr, cp,
                                                      grad.ptr, byref(loss)))
        del keep, ck
        return loss.value, grad.result()

    def train_step_given(self, adam, rng, data, context, batch):
        """train_step on pairs (data row, context row): the minibatch's
        rows of both are drawn with the same indices.  Returns the
        minibatch's mean NLL before the step."""
        h = self._h
        if not isinstance(adam, Adam):
            raise TypeError("adam must be an nvpflow.Adam")
        if not isinstance(rng, Rng):
            raise TypeError("rng must be an nvpflow.Rng")
        n, ptr, keep = _arrays.rows_in(data, self.dim, "data")
        cp, ck = self._context(context, n)
        loss = c_float(0.0)
        self._check(_lib.lib.nvp_chain_train_step_given(
            h, adam._h, rng._h, n, ptr, cp, _arrays.count(batch, "batch"),
            byref(loss)))
        del keep, ck
        return loss.value

    # ------------------------------------------------------------- score
    def score(self, y, with_log_prob=False):
        """The gradient of log p(y) with respect to y for each finite row
        (n x dim); with with_log_prob=True, (gradient, log p)."""
        h = self._h
        n, ptr, keep = _arrays.rows_in(y, self.dim, "y")
        g = _arrays.RowsOut(n, self.dim)
        lp = _arrays.VecOut(n) if with_log_prob else None
        self._check(_lib.lib.nvp_chain_score(h, n, ptr, g.ptr,
                                             lp.ptr if lp else None))
        del keep
        if with_log_prob:
            return g.result(), lp.result()
        return g.result()

    def score_given(self, y, context, with_log_prob=False):
        """(d log p(y | c) / dy (n x dim), d log p(y | c) / dc (n x
        context_dim)); with with_log_prob=True, also log p as a third
        item."""
        h = self._h
        cdim = self.context_dim
        n, ptr, keep = _arrays.rows_in(y, self.dim, "y")
        cp, ck = self._context(context, n)
        g = _arrays.RowsOut(n, self.dim)
        gc = _arrays.RowsOut(n, cdim)
        lp = _arrays.VecOut(n) if with_log_prob else None
        self._check(_lib.lib.nvp_chain_score_given(
            h, n, ptr, cp, g.ptr, gc.ptr if cdim else None,
            lp.ptr if lp else None))
        del keep, ck
        if with_log_prob:
            return g.result(), gc.result(), lp.result()
        return g.result(), gc.result()

    # ---------------------------- variational inference: the reverse KL
    def _dims(self):
        return self.dim, self.context_dim, self.num_params

    def forward_backward(self, x, dy, dlogdet=None):
        """The vector-Jacobian product of the forward direction (base to
        data): for a scalar L of y, logdet = forward(x), given dy = dL/dy
        (n x dim) and dlogdet = dL/dlogdet (n values; None means zero),
        returns (dL/dx, dL/dparameters).  The forward is recomputed from
        x.  NonFinite for NaN or infinities in x, dy or dlogdet."""
        return _forward_backward(self._h, self._dims(), self._check, x, dy,
                                 dlogdet, "forward_backward",
                                 plain=_lib.lib.nvp_chain_forward_backward)

    def forward_backward_given(self, x, context, dy, dlogdet=None):
        """forward_backward given the context: (dL/dx, dL/dcontext,
        dL/dparameters)."""
        return _forward_backward(
            self._h, self._dims(), self._check, x, dy, dlogdet,
            "forward_backward_given", context=context,
            given=_lib.lib.nvp_chain_forward_backward_given)

    def _batch_context(self, batch, context):
        """(batch, context pointer, keepalive) of a reverse-KL call."""
        batch = _arrays.count(batch, "batch")
        cp, ck = self._context(context, batch)
        return batch, cp, ck

    def reverse_kl_grad(self, rng, batch, log_density):
        """(loss, gradient) of reverse-KL (variational) training towards
        a density p~ known up to its normalising constant: draws `batch`
        rows y = f(z), z from the base, calls log_density(y) once with
        all of them (y: batch x dim, numpy float32 or a list of rows),
        which returns (log p~(y) per row, d log p~ / dy as batch x dim),
        and gives loss = mean(log q(y) - log p~(y)) (the negative ELBO;
        KL(q || p) - log Z) and its gradient with respect to every
        parameter.  An exception raised by log_density stops the call and
        is raised again as it was; NaN or infinities in what it returns
        raise NonFinite.  rng: an Rng or an int seed."""
        return self._reverse_kl_grad(rng, batch, None, log_density, False)

    def reverse_kl_grad_given(self, rng, batch, context, log_density):
        """reverse_kl_grad for a chain that reads a context: context holds
        batch rows, row i conditioning draw i (log_density gets only y:
        close over the context if it needs it)."""
        return self._reverse_kl_grad(rng, batch, context, log_density, True)

    def _reverse_kl_grad(self, rng, batch, context, log_density, given):
        what = "reverse_kl_grad_given" if given else "reverse_kl_grad"
        h = self._h
        batch, cp, ck = self._batch_context(batch, context) if given else \
            (_arrays.count(batch, "batch"), None, None)
        cb = LogDensity(log_density, self.dim, what)
        grad = _arrays.VecOut(self.num_params, kind="array")
        loss = c_float(0.0)
        r, owned = _rng_arg(rng, what)
        try:
            if given:
                rc = _lib.lib.nvp_chain_reverse_kl_grad_given(
                    h, r._h, batch, cp, cb.fn, None, grad.ptr, byref(loss))
            else:
                rc = _lib.lib.nvp_chain_reverse_kl_grad(
                    h, r._h, batch, cb.fn, None, grad.ptr, byref(loss))
        finally:
            if owned:
                r.close()
        cb.check(rc, self._errmsg)
        del ck
        return loss.value, grad.result()

    def reverse_kl_step(self, adam, rng, batch, log_density):
        """One Adam step of reverse-KL training (see reverse_kl_grad):
        returns the batch's loss, mean(log q - log p~), before the step.
        When log_density raises, or returns NaN or infinities (NonFinite),
        or the step is refused, neither the chain nor the optimizer
        changes (the rng has advanced)."""
        return self._reverse_kl_step(adam, rng, batch, None, log_density,
                                     False)

    def reverse_kl_step_given(self, adam, rng, batch, context, log_density):
        """reverse_kl_step for a chain that reads a context (batch rows,
        row i conditioning draw i)."""
        return self._reverse_kl_step(adam, rng, batch, context, log_density,
                                     True)

    def _reverse_kl_step(self, adam, rng, batch, context, log_density,
                         given):
        what = "reverse_kl_step_given" if given else "reverse_kl_step"
        h = self._h
        if not isinstance(adam, Adam):
            raise TypeError("adam must be an nvpflow.Adam")
        if not isinstance(rng, Rng):
            raise TypeError("rng must be an nvpflow.Rng")
        batch, cp, ck = self._batch_context(batch, context) if given else \
            (_arrays.count(batch, "batch"), None, None)
        cb = LogDensity(log_density, self.dim, what)
        loss = c_float(0.0)
        if given:
            rc = _lib.lib.nvp_chain_reverse_kl_step_given(
                h, adam._h, rng._h, batch, cp, cb.fn, None, byref(loss))
        else:
            rc = _lib.lib.nvp_chain_reverse_kl_step(
                h, adam._h, rng._h, batch, cb.fn, None, byref(loss))
        cb.check(rc, self._errmsg)
        del ck
        return loss.value


def train_step(chain, adam, rng, data, batch):
    """Chain.train_step as a function."""
    return chain.train_step(adam, rng, data, batch)
