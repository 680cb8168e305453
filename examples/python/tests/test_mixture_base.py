# SPDX-License-Identifier: MIT
"""Tests of the base distributions of the nvpflow ctypes bindings:
Base.normal, Base.mixture, Base.fit_mixture, clone, Chain.base and
Chain.set_base (ownership moving into the chain).

Run from the repository root (after `make`):
    python3 -m unittest discover -s examples/python/tests -v
They pass with and without numpy; with numpy the list path runs as well
(the Pure* classes).
"""
import array
import gc
import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(HERE)  # examples/python
if PKG_PARENT not in sys.path:
    sys.path.insert(0, PKG_PARENT)

import nvpflow  # noqa: E402
from nvpflow import _lib  # noqa: E402
# the result helpers the layer tests define (this directory is on the
# path when unittest discovers the tests)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from test_layers import mean, raw, to_list  # noqa: E402
# with numpy support on, or off (pure = True)
from test_layers import Base as NumpySwitch  # noqa: E402

HAVE_NUMPY = nvpflow.have_numpy()
if HAVE_NUMPY:
    import numpy as np

LOG2PI = math.log(2 * math.pi)

WEIGHTS = [1.0, 3.0]                      # normalised: 1/4, 3/4
MEANS = [[0.0, 0.0], [1.0, -1.0]]
COVS = [[[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 4.0]]]
POINTS = [[0.5, 0.25], [-1.0, 2.0], [3.0, -3.0]]


def log_gauss2(x, mu, c):
    """(log N(x; mu, c), its gradient) of a 2-D Gaussian, in double."""
    det = c[0][0] * c[1][1] - c[0][1] * c[1][0]
    inv = [[c[1][1] / det, -c[0][1] / det], [-c[1][0] / det, c[0][0] / det]]
    d = [x[0] - mu[0], x[1] - mu[1]]
    q = [inv[0][0] * d[0] + inv[0][1] * d[1],
         inv[1][0] * d[0] + inv[1][1] * d[1]]
    return (-LOG2PI - 0.5 * math.log(det) - 0.5 * (d[0] * q[0] + d[1] * q[1]),
            [-q[0], -q[1]])


def mixture_by_hand(x):
    """(log p(x), gradient) of the WEIGHTS / MEANS / COVS mixture."""
    total = sum(WEIGHTS)
    parts = [(math.log(w / total) + log_gauss2(x, m, c)[0],
              log_gauss2(x, m, c)[1])
             for w, m, c in zip(WEIGHTS, MEANS, COVS)]
    top = max(lp for lp, _ in parts)
    lse = top + math.log(sum(math.exp(lp - top) for lp, _ in parts))
    grad = [sum(math.exp(lp - lse) * g[j] for lp, g in parts)
            for j in range(2)]
    return lse, grad


def two_clusters(n, seed=3):
    """n rows around (-4, -1) (sd 0.5, 0.8) and n around (4, 1) (sd 0.5,
    0.3), interleaved."""
    z = to_list(nvpflow.Rng(seed).normal(4 * n))
    rows = []
    for r in range(2 * n):
        right = r % 2 == 1
        rows.append([(4.0 if right else -4.0) + 0.5 * z[2 * r],
                     (1.0 if right else -1.0) +
                     (0.3 if right else 0.8) * z[2 * r + 1]])
    return rows


def gaussian_fit_mean_log_lik(rows):
    """Mean log-likelihood of 2-D rows under their own ML Gaussian."""
    n = len(rows)
    m = [sum(r[j] for r in rows) / n for j in range(2)]
    c = [[sum((r[i] - m[i]) * (r[j] - m[j]) for r in rows) / n
          for j in range(2)] for i in range(2)]
    det = c[0][0] * c[1][1] - c[0][1] * c[1][0]
    return -(LOG2PI + 1.0) - 0.5 * math.log(det)


class Base(NumpySwitch):
    def mixture(self):
        return nvpflow.Base.mixture(WEIGHTS, MEANS, COVS)


class MixtureTests(Base):
    def test_log_prob_agrees_with_hand_computation(self):
        with self.mixture() as mix:
            self.assertEqual((mix.dim, mix.components), (2, 2))
            self.assertEqual(mix.kind, "mixture")
            self.assertIn("components=2", repr(mix))
            lp = to_list(mix.log_prob(POINTS))
            grad = to_list(mix.log_prob_grad(POINTS))
            self.assertEqual(len(lp), 3)
            for x, got, g in zip(POINTS, lp, grad):
                want, want_g = mixture_by_hand(x)
                self.assertAlmostEqual(got, want, delta=1e-5)
                self.assertAlmostEqual(g[0], want_g[0], delta=1e-5)
                self.assertAlmostEqual(g[1], want_g[1], delta=1e-5)

    @unittest.skipUnless(HAVE_NUMPY, "numpy")
    def test_numpy_inputs(self):
        if self.pure:
            self.skipTest("list path")
        with self.mixture() as a, nvpflow.Base.mixture(
                np.array(WEIGHTS), np.array(MEANS, dtype=np.float64),
                np.array(COVS)) as b:
            self.assertEqual(raw(a.log_prob(POINTS)),
                             raw(b.log_prob(np.array(POINTS))))

    def test_normal(self):
        with nvpflow.Base.normal(3) as b:
            self.assertEqual((b.dim, b.components, b.kind), (3, 1, "normal"))
            lp = to_list(b.log_prob([[0.0, 0.0, 0.0]]))[0]
            self.assertAlmostEqual(lp, -1.5 * LOG2PI, delta=1e-5)
        with self.assertRaises(TypeError):
            nvpflow.Base(2)

    def test_sample_mean(self):
        with self.mixture() as mix:
            s = to_list(mix.sample(20000, nvpflow.Rng(5)))
            self.assertEqual(len(s), 20000)
            self.assertAlmostEqual(mean([r[0] for r in s]), 0.75, delta=0.05)
            self.assertAlmostEqual(mean([r[1] for r in s]), -0.75,
                                   delta=0.05)
            # an int seed is a throwaway Rng of that seed
            self.assertEqual(raw(mix.sample(5, 9)),
                             raw(mix.sample(5, nvpflow.Rng(9))))

    def test_invalid_mixtures(self):
        Mix = nvpflow.Base.mixture
        with self.assertRaises(nvpflow.InvalidArgument):
            Mix([1.0, 0.0], MEANS, COVS)
        with self.assertRaises(nvpflow.InvalidArgument):
            Mix([1.0, -2.0], MEANS, COVS)
        with self.assertRaises(nvpflow.InvalidArgument):
            Mix(WEIGHTS, MEANS, [[[2.0, 0.4], [0.5, 1.0]], COVS[1]])
        with self.assertRaises(nvpflow.InvalidArgument) as cm:
            Mix(WEIGHTS, MEANS, [[[1.0, 3.0], [3.0, 1.0]], COVS[1]])
        self.assertIn("positive definite", str(cm.exception))
        self.assertEqual(cm.exception.code, _lib.EINVAL)
        with self.assertRaises(nvpflow.InvalidArgument):
            Mix(WEIGHTS, [[0.0, float("nan")], [1.0, -1.0]], COVS)
        with self.assertRaises(nvpflow.InvalidArgument):
            Mix([], [], [])
        with self.assertRaises(nvpflow.InvalidArgument):
            Mix([1.0] * 65, [[0.0]] * 65, [[[1.0]]] * 65)
        # shapes that disagree
        with self.assertRaises(nvpflow.DimensionError):
            Mix(WEIGHTS, [[0.0, 0.0]], COVS)
        with self.assertRaises(nvpflow.DimensionError):
            Mix(WEIGHTS, [[0.0, 0.0], [1.0]], COVS)
        with self.assertRaises(nvpflow.DimensionError):
            Mix(WEIGHTS, MEANS, COVS[:1])
        with self.assertRaises(nvpflow.DimensionError):
            Mix(WEIGHTS, MEANS, [[[1.0]], [[1.0]]])

    def test_clone(self):
        mix = self.mixture()
        copy = mix.clone()
        self.assertIsInstance(copy, nvpflow.Base)
        self.assertNotEqual(copy._h.value, mix._h.value)
        want = raw(mix.log_prob(POINTS))
        mix.close()
        self.assertEqual(copy.components, 2)
        self.assertEqual(raw(copy.log_prob(POINTS)), want)
        copy.close()
        with self.assertRaises(nvpflow.ClosedError):
            copy.clone()
        with nvpflow.Base.normal(2).clone() as n:
            self.assertEqual(n.components, 1)


class FitTests(Base):
    N = 300

    def test_two_clusters_want_two_components(self):
        rows = two_clusters(self.N)
        fit2 = nvpflow.Base.fit_mixture(rows, 2, nvpflow.Rng(7))
        fit1 = nvpflow.Base.fit_mixture(rows, 1, nvpflow.Rng(7))
        self.assertEqual((fit2.dim, fit2.components), (2, 2))
        self.assertEqual((fit1.components, fit1.kind), (1, "mixture"))
        ll2, ll1 = mean(fit2.log_prob(rows)), mean(fit1.log_prob(rows))
        self.assertGreater(ll2, ll1 + 1.0)
        self.assertAlmostEqual(ll1, gaussian_fit_mean_log_lik(rows),
                               delta=1e-3)
        clusters = -math.log(2) - (LOG2PI + 1.0) - 0.25 * (
            math.log(0.25 * 0.64) + math.log(0.25 * 0.09))
        self.assertAlmostEqual(ll2, clusters, delta=0.1)
        # the same rows and seed give the same base; an int seed works
        again = nvpflow.Base.fit_mixture(rows, 2, 7)
        self.assertEqual(raw(again.log_prob(rows)), raw(fit2.log_prob(rows)))
        # a flat buffer with dim
        flat = array.array("f", [v for r in rows for v in r])
        same = nvpflow.Base.fit_mixture(flat, 2, nvpflow.Rng(7), dim=2)
        self.assertEqual(raw(same.log_prob(rows)), raw(fit2.log_prob(rows)))
        for b in (fit1, fit2, again, same):
            b.close()

    def test_invalid_fits(self):
        rows = two_clusters(20)
        rng = nvpflow.Rng(1)
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Base.fit_mixture(rows[:3], 4, rng)      # n < k
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Base.fit_mixture(rows, 0, rng)
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Base.fit_mixture(rows, 65, rng)
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Base.fit_mixture(rows, 2, None)
        bad = [list(r) for r in rows]
        bad[4][1] = float("inf")
        with self.assertRaises(nvpflow.NonFinite) as cm:
            nvpflow.Base.fit_mixture(bad, 2, rng)
        self.assertEqual(cm.exception.code, _lib.ENONFINITE)
        with self.assertRaises(nvpflow.DimensionError):
            nvpflow.Base.fit_mixture([[0.0, 1.0], [2.0]], 1, rng)
        with self.assertRaises(nvpflow.DimensionError):
            nvpflow.Base.fit_mixture(array.array("f", [0.0] * 7), 1, rng,
                                     dim=2)
        closed = nvpflow.Rng(1)
        closed.close()
        with self.assertRaises(nvpflow.ClosedError):
            nvpflow.Base.fit_mixture(rows, 2, closed)


class SetBaseTests(Base):
    def identity_chain(self, dim=2):
        # zero-initialised couplings: the chain is the identity
        return nvpflow.Chain.alternating(dim, layers=4, hidden=(8,), seed=1,
                                         zero_init=True)

    def count_frees(self, base):
        counts = [0]
        real = base._free

        def counted(p):
            counts[0] += 1
            real(p)
        base._free = counted
        return counts

    def test_set_base_changes_log_prob(self):
        rows = two_clusters(100)
        with self.identity_chain() as chain:
            self.assertEqual(chain.base.components, 1)
            self.assertIn("components=1", repr(chain.base))
            with nvpflow.Base.normal(2) as n:
                want = to_list(n.log_prob(rows))
            for a, b in zip(to_list(chain.log_prob(rows)), want):
                self.assertAlmostEqual(a, b, delta=1e-5)
            fit = nvpflow.Base.fit_mixture(rows, 2, nvpflow.Rng(4))
            want = to_list(fit.log_prob(rows))
            ptr = fit._h.value
            frees = self.count_frees(fit)
            view = chain.base            # follows set_base
            chain.set_base(fit)
            self.assertTrue(fit.owned_by_chain and fit.closed)
            self.assertIn("owned by a Chain", repr(fit))
            with self.assertRaises(nvpflow.ClosedError) as cm:
                fit.log_prob(rows)
            self.assertIn("Chain.set_base", str(cm.exception))
            self.assertEqual(_lib.lib.nvp_chain_base(chain._h), ptr)
            self.assertEqual((view.components, view.kind), (2, "mixture"))
            for a, b in zip(to_list(chain.log_prob(rows)), want):
                self.assertAlmostEqual(a, b, delta=1e-4)
            self.assertEqual(raw(chain.base.log_prob(rows)), raw(want))
            # a clone of the chain's base outlives its replacement
            kept = chain.base.clone()
            chain.set_base(self.mixture())
            self.assertEqual(raw(chain.base.log_prob(POINTS)),
                             raw(self.mixture().log_prob(POINTS)))
            self.assertEqual(raw(kept.log_prob(rows)), raw(want))
            kept.close()
            # the chain's base survives a round trip through bytes
            back, _ = nvpflow.Chain.from_bytes(chain.to_bytes())
            with back:
                self.assertEqual(back.base.components, 2)
                self.assertEqual(raw(back.log_prob(POINTS)),
                                 raw(chain.log_prob(POINTS)))
            del fit
            gc.collect()
            self.assertEqual(frees, [0])  # the chain freed it, not Python
        with self.assertRaises(nvpflow.ClosedError):
            view.components

    def test_converters_refuse_a_mixture_base(self):
        # the PyTorch and nflows layouts assume N(0, I): a chain over a
        # mixture converts to another density, so it is refused
        from nvpflow import nflows, pytorch
        with self.identity_chain() as chain:
            chain.set_base(self.mixture())
            with self.assertRaises(ValueError) as cm:
                pytorch.to_state_dict(chain, tensors=False,
                                      check_masks=False)
            self.assertIn("mixture", str(cm.exception))
            with self.assertRaises(ValueError) as cm:
                nflows.to_state_dict(chain, tensors=False)
            self.assertIn("mixture", str(cm.exception))

    def test_failure_leaves_the_base_with_the_caller(self):
        with self.identity_chain() as chain:
            three = nvpflow.Base.normal(3)
            with self.assertRaises(nvpflow.DimensionError) as cm:
                chain.set_base(three)
            self.assertEqual(cm.exception.code, _lib.EDIM)
            self.assertFalse(three.owned_by_chain or three.closed)
            self.assertEqual(three.dim, 3)
            self.assertEqual(chain.base.components, 1)
            three.close()
            with self.assertRaises(nvpflow.ClosedError):
                chain.set_base(three)
            with self.assertRaises(TypeError) as cm:
                chain.set_base(chain.base)
            self.assertIn("clone()", str(cm.exception))
            with self.assertRaises(TypeError):
                chain.set_base(None)
            # the chain's own base again: refused, nothing taken
            own = nvpflow.Base._wrap(_lib.lib.nvp_chain_base(chain._h))
            try:
                with self.assertRaises(nvpflow.InvalidArgument):
                    chain.set_base(own)
                self.assertFalse(own.owned_by_chain)
            finally:
                own._ptr = None  # the chain's: never free it here
            two = nvpflow.Base.normal(2)
        with self.assertRaises(nvpflow.ClosedError):
            chain.set_base(two)
        self.assertFalse(two.closed)
        two.close()


class PureMixtureTests(MixtureTests):
    pure = True


class PureFitTests(FitTests):
    pure = True


class PureSetBaseTests(SetBaseTests):
    pure = True


if __name__ == "__main__":
    unittest.main()
