# SPDX-License-Identifier: MIT
"""The library's seeded random generator."""
import numbers
from ctypes import byref, c_uint64

from . import _arrays, _lib, errors
from ._handle import Handle, out_handle

_MASK64 = (1 << 64) - 1


def _seed_value(seed):
    # A whole number only: int(1.9) would quietly seed with 1.
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError("seed must be an integer (got %r)" % (seed,))
    seed = int(seed)
    if seed < 0:
        raise errors.InvalidArgument("seed must be >= 0 (got %d)" % seed)
    if seed > _MASK64:
        raise errors.Overflow("seed must fit in 64 bits")
    return seed


class Rng(Handle):
    """xoshiro256** seeded through splitmix64: the same seed gives the same
    stream on every machine.  Not thread-safe: give each thread its own."""

    _free_name = "nvp_rng_free"
    _errmsg_name = "nvp_rng_errmsg"

    def __init__(self, seed=0):
        out = out_handle()
        errors.check(_lib.lib.nvp_rng_create(byref(out), _seed_value(seed),
                                             None))
        self._adopt(out)

    def seed(self, seed):
        """Restarts the stream as if freshly created with `seed`."""
        self._check(_lib.lib.nvp_rng_seed(self._h, _seed_value(seed)))

    def uniform(self, n):
        """n uniform floats in [0, 1)."""
        n = _arrays.count(n)
        out = _arrays.VecOut(n)
        self._check(_lib.lib.nvp_rng_uniform(self._h, n, out.ptr))
        return out.result()

    def normal(self, n):
        """n standard normal floats."""
        n = _arrays.count(n)
        out = _arrays.VecOut(n)
        self._check(_lib.lib.nvp_rng_normal(self._h, n, out.ptr))
        return out.result()

    def index(self, n, bound):
        """n integers drawn uniformly from [0, bound)."""
        n = _arrays.count(n)
        bound = _arrays.count(bound, "bound")
        out = _arrays.VecOut(n, ctype=c_uint64)
        self._check(_lib.lib.nvp_rng_index(self._h, n, bound, out.ptr))
        return out.result()


def as_rng(rng, seed=None):
    """(Rng, owned) from an Rng, or a new one seeded with `seed`."""
    if rng is not None:
        if not isinstance(rng, Rng):
            raise TypeError("rng must be an nvpflow.Rng")
        return rng, False
    return Rng(0 if seed is None else seed), True


def _rng_arg(rng, what):
    """An Rng, or an int seed for a throwaway Rng: (Rng, owned)."""
    if isinstance(rng, Rng):
        return rng, False
    if rng is None:
        raise errors.InvalidArgument("%s needs an Rng (or an int seed)"
                                     % what)
    return as_rng(None, rng)
