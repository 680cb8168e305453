# SPDX-License-Identifier: MIT
"""Tests of the conditional flows in the nvpflow bindings: the *_given
methods of Chain and of the layers, and the score.

The round trip: fit y0 = 2c + 0.3 e0, y1 = 0.5 e1 (e ~ N(0, I), c ~ N(0,
1)) with train_step_given, then check the conditional density and the
conditional draws.  They pass with and without numpy (results are
compared as lists).
"""
import array
import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(HERE)  # examples/python
if PKG_PARENT not in sys.path:
    sys.path.insert(0, PKG_PARENT)

import nvpflow  # noqa: E402

HAVE_NUMPY = nvpflow.have_numpy()


def to_list(a):
    """Any result (numpy array, array.array, list of rows) as nested
    lists of floats."""
    if hasattr(a, "tolist"):
        return a.tolist()
    if isinstance(a, list) and a and not isinstance(a[0], (int, float)):
        return [to_list(r) for r in a]
    return list(a)


def mean(v):
    return sum(v) / len(v)


def pairs(n, seed):
    """(y, c) as flat float32 arrays: n rows of 2 and of 1 values."""
    with nvpflow.Rng(seed) as rng:
        c = to_list(rng.normal(n))
        e = to_list(rng.normal(2 * n))
    y = array.array("f")
    for i in range(n):
        y.append(2.0 * c[i] + 0.3 * e[2 * i])
        y.append(0.5 * e[2 * i + 1])
    return y, array.array("f", c)


class ConditionalRoundTrip(unittest.TestCase):
    """One flow, fitted once, checked by the tests below."""

    @classmethod
    def setUpClass(cls):
        cls.flow = nvpflow.Chain.conditional(2, 1, layers=4, hidden=(32, 32),
                                             seed=0)
        cls.flow.set_threads(1)
        y, c = pairs(2000, seed=1)
        losses = []
        with nvpflow.Adam(cls.flow, lr=1e-3) as opt, nvpflow.Rng(2) as rng:
            for _ in range(1500):
                losses.append(cls.flow.train_step_given(opt, rng, y, c, 100))
        cls.first = mean(losses[:50])
        cls.last = mean(losses[-50:])
        cls.test_y, cls.test_c = pairs(1000, seed=3)

    @classmethod
    def tearDownClass(cls):
        cls.flow.close()

    def test_shape(self):
        self.assertEqual(self.flow.context_dim, 1)
        self.assertEqual(self.flow.dim, 2)
        self.assertEqual([v.context_dim for v in self.flow.layers],
                         [1, 1, 1, 1])

    def test_loss_drops(self):
        self.assertLess(self.last, self.first - 1.0)

    def test_log_prob_given(self):
        lp = to_list(self.flow.log_prob_given(self.test_y, self.test_c))
        self.assertEqual(len(lp), 1000)
        # The true model's mean log density is about -0.94 nats; a flow
        # that ignored c would be near -2.3.
        self.assertGreater(mean(lp), -1.2)
        # The wrong context explains the rows far worse.
        wrong = array.array("f", [-v for v in self.test_c])
        lp_wrong = to_list(self.flow.log_prob_given(self.test_y, wrong))
        self.assertLess(mean(lp_wrong), mean(lp) - 5.0)
        # nll_grad_given's loss is the mean of -log p.
        loss, grad = self.flow.nll_grad_given(self.test_y, self.test_c)
        self.assertAlmostEqual(loss, -mean(lp), places=3)
        self.assertEqual(len(grad), self.flow.num_params)

    def test_conditional_draws(self):
        with nvpflow.Rng(4) as rng:
            for cv in (-1.0, 0.5, 1.0):
                s = to_list(self.flow.sample_given_one(2000, [cv], rng))
                y0 = [r[0] for r in s]
                y1 = [r[1] for r in s]
                m0 = mean(y0)
                sd0 = math.sqrt(mean([(v - m0) ** 2 for v in y0]))
                self.assertAlmostEqual(m0, 2.0 * cv, delta=0.15)
                self.assertAlmostEqual(sd0, 0.3, delta=0.1)
                self.assertAlmostEqual(mean(y1), 0.0, delta=0.1)

    def test_draws_carry_their_log_density(self):
        ctx = [[-1.0], [0.0], [2.0]]
        y, lp = self.flow.sample_given(ctx, 5, with_log_prob=True)
        again = to_list(self.flow.log_prob_given(y, ctx))
        for a, b in zip(to_list(lp), again):
            self.assertAlmostEqual(a, b, delta=1e-3)
        y1, lp1 = self.flow.sample_given_one(4, [0.5], 6, with_log_prob=True)
        self.assertEqual(len(to_list(y1)), 4)
        self.assertEqual(len(to_list(lp1)), 4)

    def test_forward_inverse_given(self):
        x = [[0.1, -0.2], [1.0, 0.5], [-1.5, 0.0]]
        ctx = [[0.3], [-0.7], [1.2]]
        y, ld = self.flow.forward_given(x, ctx)
        back, il = self.flow.inverse_given(y, ctx)
        for r, b in zip(x, to_list(back)):
            self.assertAlmostEqual(r[0], b[0], delta=1e-4)
            self.assertAlmostEqual(r[1], b[1], delta=1e-4)
        for a, b in zip(to_list(ld), to_list(il)):
            self.assertAlmostEqual(a, -b, delta=1e-4)
        stages = to_list(self.flow.forward_trace_given(x, ctx))
        self.assertEqual(len(stages), self.flow.num_layers + 1)
        for r, b in zip(to_list(y), stages[-1]):
            self.assertAlmostEqual(r[0], b[0], delta=1e-6)

    def test_score_given(self):
        y = [[1.5, 0.2]]
        c = 0.4
        dy, dc, lp = self.flow.score_given(y, [[c]], with_log_prob=True)
        dy, dc = to_list(dy), to_list(dc)
        self.assertEqual((len(dy), len(dy[0]), len(dc), len(dc[0])),
                         (1, 2, 1, 1))
        # Against central differences of log_prob_given (float32, so a
        # loose tolerance).
        h = 1e-2

        def lpg(yy, cc):
            return to_list(self.flow.log_prob_given([yy], [[cc]]))[0]
        fd_c = (lpg(y[0], c + h) - lpg(y[0], c - h)) / (2 * h)
        fd_y0 = (lpg([y[0][0] + h, y[0][1]], c) -
                 lpg([y[0][0] - h, y[0][1]], c)) / (2 * h)
        self.assertAlmostEqual(dc[0][0], fd_c, delta=0.05 * abs(fd_c) + 0.05)
        self.assertAlmostEqual(dy[0][0], fd_y0,
                               delta=0.05 * abs(fd_y0) + 0.05)
        self.assertAlmostEqual(to_list(lp)[0], lpg(y[0], c), delta=1e-4)

    def test_context_errors(self):
        with self.assertRaises(nvpflow.InvalidArgument):
            self.flow.log_prob(self.test_y)
        with self.assertRaises(nvpflow.InvalidArgument):
            self.flow.log_prob_given(self.test_y, None)
        with self.assertRaises(nvpflow.DimensionError):
            self.flow.log_prob_given([[0.0, 0.0]], [[1.0], [2.0]])
        with self.assertRaises(nvpflow.DimensionError):
            self.flow.sample_given_one(3, [1.0, 2.0], 0)


class ConditionalLayers(unittest.TestCase):

    def test_chain_of_conditional_layers(self):
        y, _ = pairs(300, seed=7)
        with nvpflow.Rng(8) as rng:
            ctx = [[a, b] for a, b in zip(to_list(rng.normal(300)),
                                          to_list(rng.normal(300)))]
        cp = nvpflow.Coupling(3, mask=[1, 0, 1], hidden=(8,), context_dim=2,
                              seed=9)
        self.assertEqual(cp.context_dim, 2)
        x = [[0.1, 0.2, 0.3], [-1.0, 0.0, 1.0]]
        c2 = [[0.5, -0.5], [1.0, 2.0]]
        out, ld = cp.forward_given(x, c2)
        back, il = cp.inverse_given(out, c2)
        for r, b in zip(x, to_list(back)):
            for u, v in zip(r, b):
                self.assertAlmostEqual(u, v, delta=1e-4)
        dy, dc, grad = cp.inverse_backward_given(out, c2, [[1.0] * 3] * 2)
        self.assertEqual(len(to_list(dc)), 2)
        self.assertEqual(len(to_list(dc)[0]), 2)
        self.assertEqual(len(grad), cp.num_params)
        with self.assertRaises(nvpflow.InvalidArgument):
            cp.forward(x)
        cp.close()

        # A half-split conditional coupling has nvp_coupling_create_half's
        # mask.
        half = nvpflow.Coupling(4, hidden=(8,), flip=True, context_dim=1,
                                seed=1)
        self.assertEqual(list(half.mask), [0, 0, 1, 1])
        half.close()

        y3 = [[r0, r1, r0 - r1] for r0, r1 in
              zip(to_list(y)[0::2], to_list(y)[1::2])]
        layers = [nvpflow.Linear(3),
                  nvpflow.Coupling(3, mask=[0, 1, 0], hidden=(8,),
                                   zero_init=True, context_dim=2, seed=10),
                  nvpflow.Coupling(3, mask=[1, 0, 1], hidden=(8,),
                                   zero_init=True, context_dim=2, seed=11)]
        with nvpflow.Chain.from_layers(layers) as chain:
            self.assertEqual(chain.context_dim, 2)
            before = to_list(chain.layer(0).params)
            chain.init_from_data_given(y3, ctx)
            self.assertNotEqual(to_list(chain.layer(0).params), before)
            lp = to_list(chain.log_prob_given(y3, ctx))
            self.assertTrue(all(math.isfinite(v) for v in lp))

    def test_unconditional_chain_takes_no_context(self):
        y, _ = pairs(50, seed=12)
        with nvpflow.Chain.alternating(2, layers=2, hidden=(8,),
                                       seed=13) as flow:
            self.assertEqual(flow.context_dim, 0)
            self.assertEqual(to_list(flow.log_prob_given(y, None)),
                             to_list(flow.log_prob(y)))
            g, lp = flow.score(y, with_log_prob=True)
            self.assertEqual(len(to_list(g)), 50)
            for a, b in zip(to_list(lp), to_list(flow.log_prob(y))):
                self.assertAlmostEqual(a, b, delta=1e-4)
            with self.assertRaises(nvpflow.DimensionError):
                flow.log_prob_given(y, [[1.0]] * 50)
            with self.assertRaises(nvpflow.InvalidArgument):
                flow.sample_given([[1.0]], 0)


if __name__ == "__main__":
    unittest.main()
