# SPDX-License-Identifier: MIT
"""The Adam optimizer and its saved training state."""
import ctypes
import os
from ctypes import byref, c_size_t

from . import _arrays, _lib, errors
from ._handle import Handle, out_handle
from .rng import Rng


def _path(path):
    """path as bytes for the C library; a NUL inside it is refused as
    Python's own open() refuses it (C would stop at the NUL and write
    another file)."""
    p = os.fsencode(path)
    if b"\0" in p:
        raise ValueError("embedded null byte in path %r" % (path,))
    return p


def _bytes_arg(data):
    """Bytes-like input as (pointer, size, keepalive) without a copy for
    bytes."""
    if isinstance(data, bytes):
        return data, len(data), data
    mv = memoryview(data).cast("B")
    b = mv.tobytes()
    return b, len(b), b


def _save_buffer(fn, h, other, check):
    """Calls nvp_<type>_save_buffer twice: size query, then the write."""
    size = c_size_t(0)
    check(fn(h, other, 0, None, byref(size)))
    buf = ctypes.create_string_buffer(size.value)
    check(fn(h, other, size.value, buf, byref(size)))
    return buf.raw[:size.value]


class Adam(Handle):
    """Adam with bias correction over a flat vector of n_params floats.

    Adam(chain_or_n_params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)"""

    _free_name = "nvp_adam_free"
    _errmsg_name = "nvp_adam_errmsg"

    def __init__(self, n_params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 clip_norm=0.0):
        if hasattr(n_params, "num_params"):
            n_params = n_params.num_params
        out = out_handle()
        errors.check(_lib.lib.nvp_adam_create(
            byref(out), _arrays.count(n_params, "n_params"), None))
        self._adopt(out)
        try:
            self.lr = lr
            self.set_betas(*betas)
            self.set_eps(eps)
            if clip_norm:
                self.clip_norm = clip_norm
        except BaseException:
            self.close()
            raise

    def _describe(self):
        return "n_params=%d lr=%g steps=%d" % (self.num_params, self.lr,
                                               self.steps)

    @property
    def lr(self):
        return _lib.lib.nvp_adam_lr(self._h)

    @lr.setter
    def lr(self, value):
        self._check(_lib.lib.nvp_adam_set_lr(self._h, float(value)))

    def set_betas(self, b1, b2):
        self._check(_lib.lib.nvp_adam_set_betas(self._h, float(b1),
                                                float(b2)))

    @property
    def betas(self):
        """(b1, b2); settable."""
        h = self._h
        return _lib.lib.nvp_adam_beta1(h), _lib.lib.nvp_adam_beta2(h)

    @betas.setter
    def betas(self, value):
        self.set_betas(*value)

    def set_eps(self, eps):
        self._check(_lib.lib.nvp_adam_set_eps(self._h, float(eps)))

    @property
    def eps(self):
        """Adam's epsilon; settable."""
        return _lib.lib.nvp_adam_eps(self._h)

    @eps.setter
    def eps(self, value):
        self.set_eps(value)

    @property
    def kernels(self):
        """The kernel level of the update and the gradient checks (one of
        the KERNELS_* constants; every level gives the same bits)."""
        return _lib.lib.nvp_adam_kernels(self._h)

    def set_kernels(self, kernels):
        """As Chain.set_kernels, for the optimizer's own work."""
        self._check(_lib.lib.nvp_adam_set_kernels(
            self._h, _lib.kernels_arg(kernels)))

    @property
    def num_params(self):
        return _lib.lib.nvp_adam_num_params(self._h)

    @property
    def steps(self):
        """Steps taken so far (t)."""
        return _lib.lib.nvp_adam_num_steps(self._h)

    def reset(self):
        """Forgets the moments and the step count (not the average)."""
        self._check(_lib.lib.nvp_adam_reset(self._h))

    def _params_arg(self, params, who, convert):
        """(pointer, object to keep alive) for `params`: a Chain's own
        parameter vector, or a float vector converted by `convert`."""
        n = self.num_params
        if hasattr(params, "_params_ptr"):
            if params.num_params != n:
                raise errors.DimensionError(
                    "%s: optimizer has %d parameters, chain %d"
                    % (who, n, params.num_params))
            return params._params_ptr(), params
        return convert(params, n, "params")

    def step(self, params, grad):
        """One update of `params` (a Chain, or a writable float32 vector)
        from `grad`.  NonFinite (nothing changes) for a NaN/Inf gradient."""
        h = self._h
        n = self.num_params
        pp, pk = self._params_arg(params, "Adam.step", _arrays.writable_vec)
        gp, gk = _arrays.vec_in(grad, n, "grad")
        self._check(_lib.lib.nvp_adam_step(h, n, pp, gp))
        del pk, gk

    # -------------------------------------------------- parameter average
    def set_average(self, decay, params=None):
        """Turns on (or restarts) the parameter average, an exponential
        moving average with the given decay in (0, 1) that every applied
        step updates, starting from `params` (a Chain or a float vector);
        decay 0 turns it off.  See nvp_adam_set_average."""
        h = self._h
        n = self.num_params
        decay = float(decay)
        if decay == 0.0 or not 0.0 < decay < 1.0:
            # Off, or a decay the library refuses with its own message.
            self._check(_lib.lib.nvp_adam_set_average(h, decay, 0, None))
            return
        if params is None:
            raise TypeError("Adam.set_average: params are needed to start "
                            "the average")
        ptr, keep = self._params_arg(params, "Adam.set_average",
                                     _arrays.vec_in)
        self._check(_lib.lib.nvp_adam_set_average(h, decay, n, ptr))
        del keep

    @property
    def average_decay(self):
        """The parameter average's decay; 0.0 when averaging is off."""
        return _lib.lib.nvp_adam_average_decay(self._h)

    def average(self):
        """A copy of the parameter average (numpy float32, or
        array.array('f') without numpy), e.g. for Chain.set_params."""
        n = self.num_params
        out = _arrays.VecOut(n, kind="array")
        self._check(_lib.lib.nvp_adam_get_average(self._h, n, out.ptr))
        return out.result()

    # -------------------------------------------------- gradient clipping
    @property
    def clip_norm(self):
        """Gradient-norm clipping limit: a step whose gradient has a larger
        Euclidean norm uses the gradient scaled down to it.  0.0 (the
        default) is off.  See nvp_adam_set_clip_norm."""
        return _lib.lib.nvp_adam_clip_norm(self._h)

    @clip_norm.setter
    def clip_norm(self, max_norm):
        self._check(_lib.lib.nvp_adam_set_clip_norm(self._h, float(max_norm)))

    @property
    def weight_decay(self):
        """Decoupled weight decay (AdamW): every step also takes
        lr * weight_decay * p off each parameter.  0.0 (the default) is
        off.  See nvp_adam_set_weight_decay."""
        return _lib.lib.nvp_adam_weight_decay(self._h)

    @weight_decay.setter
    def weight_decay(self, value):
        self._check(_lib.lib.nvp_adam_set_weight_decay(self._h, float(value)))

    @property
    def last_grad_norm(self):
        """Norm of the last applied gradient before clipping (while
        clipping is on; 0.0 before the first such step)."""
        return _lib.lib.nvp_adam_last_grad_norm(self._h)

    # ------------------------------------------------------------ state
    def to_bytes(self, rng=None):
        """The training state (settings, step count, moments, the
        parameter average when on, and the minibatch generator when
        given) as bytes."""
        r = rng._h if rng is not None else None
        return _save_buffer(_lib.lib.nvp_adam_save_buffer, self._h, r,
                            self._check)

    def save(self, path, rng=None):
        """Writes the training state to path atomically."""
        r = rng._h if rng is not None else None
        self._check(_lib.lib.nvp_adam_save_file(self._h, r, _path(path)))

    @classmethod
    def from_bytes(cls, data):
        """(Adam, Rng or None) from bytes made by to_bytes()."""
        ptr, size, keep = _bytes_arg(data)
        out, rng_out = out_handle(), out_handle()
        errors.check(_lib.lib.nvp_adam_load_buffer(
            byref(out), byref(rng_out), size, ptr, None))
        del keep
        return cls._wrap_loaded(out, rng_out)

    @classmethod
    def load(cls, path):
        """(Adam, Rng or None) from a file written by save()."""
        out, rng_out = out_handle(), out_handle()
        errors.check(_lib.lib.nvp_adam_load_file(
            byref(out), byref(rng_out), _path(path), None))
        return cls._wrap_loaded(out, rng_out)

    @classmethod
    def _wrap_loaded(cls, out, rng_out):
        rng = Rng._wrap(rng_out) if rng_out.value else None
        try:
            opt = cls._wrap(out)
        except BaseException:
            if rng is not None:
                rng.close()
            raise
        return opt, rng
