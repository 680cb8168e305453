# SPDX-License-Identifier: MIT
"""Tests of the forward direction's vector-Jacobian product
(forward_backward) and of reverse-KL (variational) training in the nvpflow
bindings.

forward_backward is checked against central differences of forward and
its log-determinant, in double precision on this side; reverse_kl_grad
against forward_backward on the same draws; reverse_kl_step by fitting a
correlated Gaussian known up to its constant, whose log Z is known.  The
callback's failures (an exception, NaN) must leave chain and optimizer as
they were.  They pass with and without numpy (results compared as
lists).
"""
import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(HERE)  # examples/python
if PKG_PARENT not in sys.path:
    sys.path.insert(0, PKG_PARENT)

import nvpflow  # noqa: E402

LOG2PI = math.log(2 * math.pi)


def to_list(a):
    """Any result (numpy array, array.array, list of rows) as nested
    lists of floats."""
    if hasattr(a, "tolist"):
        return a.tolist()
    if isinstance(a, list) and a and not isinstance(a[0], (int, float)):
        return [to_list(r) for r in a]
    return list(a)


def rows(flat, dim):
    flat = to_list(flat)
    return [flat[i:i + dim] for i in range(0, len(flat), dim)]


def draws(seed, n):
    with nvpflow.Rng(seed) as r:
        return to_list(r.normal(n))


def small_chain(dim=3, seed=10):
    """Every layer kind, with parameters moved off their identity start
    so that each one's gradient is exercised."""
    layers = [nvpflow.Linear(dim), nvpflow.ActNorm(dim),
              nvpflow.Coupling(dim, hidden=(6,), seed=seed),
              nvpflow.Permutation(dim, seed=seed + 1),
              nvpflow.Coupling(dim, hidden=(6,), flip=True, seed=seed + 2)]
    chain = nvpflow.Chain.from_layers(layers)
    p = to_list(chain.params)
    noise = draws(seed + 3, len(p))
    chain.set_params([v + 0.2 * e for v, e in zip(p, noise)])
    chain.set_threads(1)
    return chain


class Gaussian:
    """The unnormalised target log p~(y) = -(y - mu)' P (y - mu) / 2 with
    P the inverse of Sigma = [[s0^2, r s0 s1], [r s0 s1, s1^2]]; log Z =
    log 2 pi + log det(Sigma) / 2.  Written without numpy, so that the
    callback returns lists on either path."""

    def __init__(self, mu=(1.0, -0.5), s=(1.5, 0.6), r=0.8):
        self.mu = mu
        det = (s[0] * s[1]) ** 2 * (1 - r * r)
        c = r * s[0] * s[1]
        self.P = ((s[1] ** 2 / det, -c / det), (-c / det, s[0] ** 2 / det))
        self.log_z = LOG2PI + 0.5 * math.log(det)
        self.calls = 0

    def __call__(self, y):
        self.calls += 1
        P, mu = self.P, self.mu
        lp, g = [], []
        for row in to_list(y):
            d0, d1 = row[0] - mu[0], row[1] - mu[1]
            g0 = -(P[0][0] * d0 + P[0][1] * d1)
            g1 = -(P[1][0] * d0 + P[1][1] * d1)
            lp.append(0.5 * (d0 * g0 + d1 * g1))
            g.append([g0, g1])
        return lp, g


def close(test, got, want, what, rel=2e-2, abs_=2e-3):
    test.assertEqual(len(got), len(want), what)
    for i, (a, b) in enumerate(zip(got, want)):
        test.assertLessEqual(abs(a - b), abs_ + rel * abs(b),
                             "%s[%d]: %r, finite differences %r"
                             % (what, i, a, b))


class ForwardBackward(unittest.TestCase):
    """L = sum w * y + sum v * logdet: dL/dx, dL/dparameters (and
    dL/dcontext) against central differences."""

    # The conditioners' ReLUs make L piecewise smooth: with eps = 1e-2 one
    # unit crosses zero inside the stencil for these draws; 3e-3 stays
    # within one piece (and float32 round-off stays below the tolerance).
    dim, n, eps = 3, 4, 3e-3

    def setUp(self):
        self.chain = small_chain(self.dim)
        self.x = rows(draws(20, self.n * self.dim), self.dim)
        self.w = rows(draws(21, self.n * self.dim), self.dim)
        self.v = draws(22, self.n)

    def tearDown(self):
        self.chain.close()

    def loss(self, fwd, x):
        y, ld = fwd(x)
        y, ld = to_list(y), to_list(ld)
        return sum(a * b for yr, wr in zip(y, self.w) for a, b in
                   zip(yr, wr)) + sum(a * b for a, b in zip(ld, self.v))

    def fd_x(self, fwd, x):
        out = []
        for i in range(len(x)):
            for j in range(len(x[i])):
                hi = [r[:] for r in x]
                lo = [r[:] for r in x]
                hi[i][j] += self.eps
                lo[i][j] -= self.eps
                out.append((self.loss(fwd, hi) - self.loss(fwd, lo))
                           / (2 * self.eps))
        return out

    def fd_params(self, obj, fwd, x):
        p = to_list(obj.params)
        out = []
        for k in range(len(p)):
            hi, lo = p[:], p[:]
            hi[k] += self.eps
            lo[k] -= self.eps
            obj.set_params(hi)
            up = self.loss(fwd, x)
            obj.set_params(lo)
            down = self.loss(fwd, x)
            out.append((up - down) / (2 * self.eps))
        obj.set_params(p)
        return out

    def flat(self, a):
        return [v for r in to_list(a) for v in r]

    def test_chain(self):
        c = self.chain
        dx, grad = c.forward_backward(self.x, self.w, self.v)
        close(self, self.flat(dx), self.fd_x(c.forward, self.x), "dx")
        close(self, to_list(grad), self.fd_params(c, c.forward, self.x),
              "grad")
        self.assertEqual(len(to_list(grad)), c.num_params)

    def test_dlogdet_none_is_zero(self):
        c = self.chain
        a = c.forward_backward(self.x, self.w)
        b = c.forward_backward(self.x, self.w, [0.0] * self.n)
        self.assertEqual(to_list(a[0]), to_list(b[0]))
        self.assertEqual(to_list(a[1]), to_list(b[1]))

    def test_given_without_context_is_plain(self):
        c = self.chain
        a = c.forward_backward(self.x, self.w, self.v)
        dx, dc, g = c.forward_backward_given(self.x, None, self.w, self.v)
        self.assertEqual(to_list(dx), to_list(a[0]))
        self.assertEqual(to_list(g), to_list(a[1]))
        self.assertEqual(len(to_list(dc)), self.n)

    def test_layers(self):
        """Each layer of the chain (a view) against its own forward."""
        for view in self.chain.layers:
            dx, grad = view.forward_backward(self.x, self.w, self.v)
            close(self, self.flat(dx), self.fd_x(view.forward, self.x),
                  "%s dx" % view.kind)
            self.assertEqual(len(to_list(grad)), view.num_params)

    def test_owned_layer_params(self):
        """An owned layer: its parameter gradient too."""
        with nvpflow.Coupling(self.dim, hidden=(5,), seed=30) as layer:
            dx, grad = layer.forward_backward(self.x, self.w, self.v)
            close(self, self.flat(dx), self.fd_x(layer.forward, self.x),
                  "coupling dx")
            close(self, to_list(grad),
                  self.fd_params(layer, layer.forward, self.x),
                  "coupling grad")

    def test_conditional(self):
        """dL/dcontext and dL/dx of a chain that reads a context."""
        with nvpflow.Chain.conditional(self.dim, 2, layers=2, hidden=(6,),
                                       seed=31) as c:
            ctx = rows(draws(32, self.n * 2), 2)
            dx, dc, grad = c.forward_backward_given(self.x, ctx, self.w,
                                                    self.v)
            close(self, self.flat(dx), self.fd_x(
                lambda x: c.forward_given(x, ctx), self.x), "dx")
            close(self, self.flat(dc), self.fd_x(
                lambda k: c.forward_given(self.x, k), ctx), "dcontext")
            self.assertEqual(len(to_list(grad)), c.num_params)
            # The layer form, on the first layer.
            view = c.layer(0)
            dx, dc, _ = view.forward_backward_given(self.x, ctx, self.w,
                                                    self.v)
            close(self, self.flat(dc), self.fd_x(
                lambda k: view.forward_given(self.x, k), ctx),
                "layer dcontext")

    def test_refusals(self):
        c = self.chain
        with self.assertRaises(nvpflow.DimensionError):
            c.forward_backward(self.x, self.w[:-1])
        with self.assertRaises(nvpflow.DimensionError):
            c.forward_backward(self.x, self.w, self.v[:-1])
        bad = [r[:] for r in self.w]
        bad[0][0] = float("nan")
        with self.assertRaises(nvpflow.NonFinite):
            c.forward_backward(self.x, bad)


class ReverseKL(unittest.TestCase):

    def test_grad_matches_forward_backward(self):
        """reverse_kl_grad is forward_backward on the draws of
        chain.sample with dL/dy = -dlogp/dy / batch, dL/dlogdet =
        -1 / batch; the loss is mean(log N(z) - logdet - log p~)."""
        target = Gaussian()
        batch = 8
        with nvpflow.Chain.alternating(2, layers=3, hidden=(8,),
                                       seed=40) as c:
            seen = []

            def log_density(y):
                seen.append(to_list(y))
                return target(y)

            loss, grad = c.reverse_kl_grad(nvpflow.Rng(41), batch,
                                           log_density)
            self.assertEqual(len(seen), 1)
            self.assertEqual(seen[0], to_list(c.sample(batch,
                                                       nvpflow.Rng(41))))
            z = rows(draws(41, 2 * batch), 2)
            y, ld = c.forward(z)
            lp, g = target(y)
            dy = [[-v / batch for v in r] for r in g]
            _, want = c.forward_backward(z, dy, [-1.0 / batch] * batch)
            close(self, to_list(grad), to_list(want), "grad", rel=1e-4,
                  abs_=1e-5)
            want_loss = sum(-0.5 * (a * a + b * b) - LOG2PI - l - p
                            for (a, b), l, p in zip(z, to_list(ld), lp))
            self.assertAlmostEqual(loss, want_loss / batch, places=3)

    def test_trains_to_a_correlated_gaussian(self):
        """A linear layer, an actnorm and two couplings fitted by reverse
        KL: the ELBO (minus the loss) comes to within 0.05 of log Z."""
        target = Gaussian()
        layers = [nvpflow.Linear(2), nvpflow.ActNorm(2),
                  nvpflow.Coupling(2, hidden=(16,), zero_init=True, seed=50),
                  nvpflow.Coupling(2, hidden=(16,), flip=True,
                                   zero_init=True, seed=51)]
        steps, last = 400, 50
        losses = []
        with nvpflow.Chain.from_layers(layers) as c, \
                nvpflow.Adam(c, lr=1e-2) as opt, nvpflow.Rng(52) as rng:
            c.set_threads(1)
            for _ in range(steps):
                losses.append(c.reverse_kl_step(opt, rng, 128, target))
            self.assertEqual(opt.steps, steps)
        self.assertEqual(target.calls, steps)
        elbo = -sum(losses[-last:]) / last
        self.assertLess(abs(elbo - target.log_z), 0.05,
                        "ELBO %.4f, log Z %.4f (first loss %.4f)"
                        % (elbo, target.log_z, losses[0]))

    def test_given(self):
        """The _given forms on a conditional chain: the context reaches
        the draws (two contexts, two different batches) and a step
        trains."""
        batch = 6
        with nvpflow.Chain.conditional(2, 1, layers=2, hidden=(8,),
                                       seed=60) as c, \
                nvpflow.Adam(c, lr=1e-3) as opt:
            ys = []

            def log_density(y):
                ys.append(to_list(y))
                return Gaussian()(y)

            for k in (0.0, 3.0):
                c.reverse_kl_grad_given(nvpflow.Rng(61), batch,
                                        [[k]] * batch, log_density)
            self.assertNotEqual(ys[0], ys[1])
            self.assertEqual(ys[1], to_list(c.sample_given(
                [[3.0]] * batch, nvpflow.Rng(61))))
            before = to_list(c.params)
            with nvpflow.Rng(62) as rng:
                c.reverse_kl_step_given(opt, rng, batch, [[1.0]] * batch,
                                        log_density)
            self.assertNotEqual(to_list(c.params), before)
            with self.assertRaises(nvpflow.DimensionError):
                c.reverse_kl_grad_given(nvpflow.Rng(61), batch,
                                        [[1.0]] * (batch - 1), log_density)


class CallbackFailures(unittest.TestCase):
    """Whatever the callback does wrong, the exception comes out of the
    call, and the chain and the optimizer are as they were."""

    def setUp(self):
        self.chain = nvpflow.Chain.alternating(2, layers=2, hidden=(8,),
                                               seed=70)
        self.opt = nvpflow.Adam(self.chain, lr=1e-2)
        self.rng = nvpflow.Rng(71)
        self.chain.reverse_kl_step(self.opt, self.rng, 16, Gaussian())
        self.params = to_list(self.chain.params)

    def tearDown(self):
        for h in (self.chain, self.opt, self.rng):
            h.close()

    def unchanged(self):
        self.assertEqual(to_list(self.chain.params), self.params)
        self.assertEqual(self.opt.steps, 1)

    def test_exception_propagates(self):
        class Boom(Exception):
            pass

        err = Boom("from the callback")

        def log_density(y):
            raise err

        with self.assertRaises(Boom) as cm:
            self.chain.reverse_kl_step(self.opt, self.rng, 16, log_density)
        self.assertIs(cm.exception, err)
        self.unchanged()
        with self.assertRaises(Boom) as cm:
            self.chain.reverse_kl_grad(self.rng, 16, log_density)
        self.assertIs(cm.exception, err)
        # The chain still works, and the next call does not see the old
        # exception.
        self.chain.reverse_kl_grad(self.rng, 16, Gaussian())

    def test_base_exception_propagates(self):
        """KeyboardInterrupt-like exceptions as well."""
        class Stop(BaseException):
            pass

        def log_density(y):
            raise Stop()

        with self.assertRaises(Stop):
            self.chain.reverse_kl_step(self.opt, self.rng, 16, log_density)
        self.unchanged()

    def test_nan_is_non_finite(self):
        def log_density(y):
            lp, g = Gaussian()(y)
            lp[3] = float("nan")
            return lp, g

        with self.assertRaises(nvpflow.NonFinite):
            self.chain.reverse_kl_step(self.opt, self.rng, 16, log_density)
        self.unchanged()

        def inf_grad(y):
            lp, g = Gaussian()(y)
            g[0][1] = float("inf")
            return lp, g

        with self.assertRaises(nvpflow.NonFinite):
            self.chain.reverse_kl_step(self.opt, self.rng, 16, inf_grad)
        self.unchanged()

    def test_bad_results(self):
        """Wrong shapes or types are the callback's exceptions too."""
        bad = [lambda y: None,
               lambda y: ([0.0] * 3, [[0.0, 0.0]] * 16),
               lambda y: ([0.0] * 16, [[0.0, 0.0]] * 15),
               lambda y: ([0.0] * 16, [[0.0, 0.0, 0.0]] * 16),
               lambda y: (["x"] * 16, [[0.0, 0.0]] * 16)]
        for fn in bad:
            with self.assertRaises((TypeError, ValueError)):
                self.chain.reverse_kl_step(self.opt, self.rng, 16, fn)
            self.unchanged()
        with self.assertRaises(TypeError):
            self.chain.reverse_kl_step(self.opt, self.rng, 16, 42)
        with self.assertRaises(TypeError):
            self.chain.reverse_kl_step(None, self.rng, 16, Gaussian())
        self.unchanged()


if __name__ == "__main__":
    unittest.main()
