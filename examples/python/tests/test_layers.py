# SPDX-License-Identifier: MIT
"""Tests of the layer kinds, Chain.from_layers, init_from_data, kernels and
the prototypes of the nvpflow ctypes bindings.

Run from the repository root (after `make`):
    python3 -m unittest discover -s examples/python/tests -v
They pass with and without numpy; with numpy the list path runs as well
(the Pure* classes), and the Gaussian fit is checked against numpy's as
well as against a pure-Python computation.
"""
import array
import ctypes
import gc
import math
import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(HERE)  # examples/python
ROOT = os.path.normpath(os.path.join(PKG_PARENT, "..", ".."))
HEADER = os.path.join(ROOT, "include", "nvpflow.h")
if PKG_PARENT not in sys.path:
    sys.path.insert(0, PKG_PARENT)

import nvpflow  # noqa: E402
import nvpflow.pytorch  # noqa: E402
from nvpflow import _arrays, _lib  # noqa: E402

HAVE_NUMPY = nvpflow.have_numpy()
if HAVE_NUMPY:
    import numpy as np

LOG2PI = math.log(2 * math.pi)


def to_list(a):
    """Any result (numpy array, array.array, list) as nested lists."""
    if HAVE_NUMPY and isinstance(a, np.ndarray):
        return a.tolist()
    if isinstance(a, array.array):
        return a.tolist()
    if isinstance(a, list) and a and isinstance(a[0], (list, tuple)):
        return [to_list(r) for r in a]
    return list(a)


def raw(a):
    """Bytes of a float32 result, for bitwise comparisons."""
    flat = to_list(a)
    if flat and isinstance(flat[0], list):
        flat = [v for row in flat for v in row]
    return array.array("f", flat).tobytes()


def mean(values):
    values = to_list(values)
    return math.fsum(values) / len(values)


def gaussian_rows(n, seed):
    """n rows of a correlated 3-D Gaussian (lists of floats)."""
    m = [[1.5, 0.0, 0.0], [0.9, 0.6, 0.0], [-0.4, 0.7, 0.3]]
    mu = [2.0, -1.0, 0.5]
    with nvpflow.Rng(seed) as rng:
        z = to_list(rng.normal(3 * n))
    return [[mu[i] + sum(m[i][j] * z[3 * r + j] for j in range(3))
             for i in range(3)] for r in range(n)]


def gaussian_fit_pure(rows):
    """Mean log-likelihood of the rows under their maximum-likelihood
    Gaussian (population covariance), in pure Python: -d/2 (log 2 pi + 1)
    - log|det Sigma| / 2, the determinant from a Cholesky factorisation."""
    rows = [[float(v) for v in r] for r in rows]
    n, d = len(rows), len(rows[0])
    mu = [math.fsum(r[i] for r in rows) / n for i in range(d)]
    cov = [[math.fsum((r[i] - mu[i]) * (r[j] - mu[j]) for r in rows) / n
            for j in range(d)] for i in range(d)]
    chol = [[0.0] * d for _ in range(d)]
    logdet = 0.0
    for j in range(d):
        s = cov[j][j] - sum(chol[j][k] ** 2 for k in range(j))
        chol[j][j] = math.sqrt(s)
        logdet += 2 * math.log(chol[j][j])
        for i in range(j + 1, d):
            chol[i][j] = (cov[i][j] - sum(chol[i][k] * chol[j][k]
                                          for k in range(j))) / chol[j][j]
    return -0.5 * d * (LOG2PI + 1) - 0.5 * logdet


def gaussian_fit_numpy(rows):
    x = np.asarray(rows, dtype=np.float64)
    d = x.shape[1]
    sign, logdet = np.linalg.slogdet(np.cov(x.T, bias=True))
    assert sign > 0
    return -0.5 * d * (LOG2PI + 1) - 0.5 * logdet


def every_kind(dim=3, seed=5, zero_init=True):
    """One layer of every kind (fresh objects), and their kinds."""
    layers = [nvpflow.Linear(dim), nvpflow.ActNorm(dim),
              nvpflow.Coupling(dim, hidden=(16,), zero_init=zero_init,
                               seed=seed),
              nvpflow.Permutation(dim, seed=seed + 1),
              nvpflow.Coupling(dim, mask=[1, 0, 1], hidden=(16, 8),
                               zero_init=zero_init, seed=seed + 2),
              nvpflow.Permutation(perm=[2, 0, 1])]
    kinds = ["linear", "actnorm", "affine coupling", "permutation",
             "affine coupling", "permutation"]
    return layers, kinds


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo, or None where it cannot
    tell (another system, another architecture)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


class Base(unittest.TestCase):
    pure = False  # True: the package's numpy support switched off

    def setUp(self):
        self._saved_np = _arrays.np
        if self.pure:
            _arrays.np = None

    def tearDown(self):
        _arrays.np = self._saved_np

    def assertClose(self, a, b, tol=1e-5):
        a, b = to_list(a), to_list(b)
        self.assertEqual(len(a), len(b))
        for u, v in zip(a, b):
            if isinstance(u, list):
                self.assertClose(u, v, tol)
            else:
                self.assertLessEqual(abs(u - v), tol * (1 + abs(v)),
                                     "%r vs %r" % (u, v))


class LayerKindTests(Base):
    def test_permutation(self):
        with nvpflow.Permutation(perm=[2, 0, 1]) as p:
            self.assertEqual((p.kind, p.dim, p.num_params), ("permutation",
                                                              3, 0))
            self.assertEqual(p.perm, [2, 0, 1])
            self.assertFalse(p.is_coupling)
            self.assertEqual(to_list(p.params), [])
            p.set_params([])
            with self.assertRaises(nvpflow.DimensionError):
                p.set_params([1.0])
            y, ld = p.forward([[1.0, 2.0, 3.0], [-4.0, 5.0, 0.5]])
            self.assertEqual(to_list(y), [[3.0, 1.0, 2.0], [0.5, -4.0, 5.0]])
            self.assertEqual(to_list(ld), [0.0, 0.0])
            x, _ = p.inverse(y)
            self.assertEqual(to_list(x), [[1.0, 2.0, 3.0], [-4.0, 5.0, 0.5]])
        # Drawn: the same seed, the same permutation; an Rng advances.
        with nvpflow.Permutation(7, seed=3) as a, \
                nvpflow.Permutation(7, seed=3) as b:
            self.assertEqual(a.perm, b.perm)
            self.assertEqual(sorted(a.perm), list(range(7)))
        with nvpflow.Rng(3) as rng:
            first = nvpflow.Permutation(7, rng=rng)
            second = nvpflow.Permutation(7, rng=rng)
            self.assertNotEqual(first.perm, second.perm)
            first.close()
            second.close()
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Permutation(perm=[0, 0, 1])
        with self.assertRaises(nvpflow.DimensionError):
            nvpflow.Permutation(4, perm=[0, 1, 2])
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Permutation(0, seed=1)
        with self.assertRaises(TypeError):
            nvpflow.Permutation()

    def test_actnorm(self):
        with nvpflow.ActNorm(3) as a:
            self.assertEqual((a.kind, a.num_params), ("actnorm", 6))
            x = [[1.0, 2.0, 3.0], [-4.0, 5.0, 0.5]]
            y, _ = a.forward(x)
            self.assertEqual(to_list(y), x)   # starts as the identity
            sb = [0.5, -1.0, 0.0, 1.0, 2.0, -3.0]
            a.params = sb
            self.assertEqual(to_list(a.params), sb)
            y, ld = a.forward(x)
            want = [[r[i] * math.exp(sb[i]) + sb[3 + i] for i in range(3)]
                    for r in x]
            self.assertClose(y, want)
            self.assertClose(ld, [-0.5, -0.5])
            bad = list(sb)
            bad[4] = float("nan")
            with self.assertRaises(nvpflow.NonFinite):
                a.set_params(bad)
            self.assertEqual(to_list(a.params), sb)
            with self.assertRaises(nvpflow.DimensionError):
                a.set_params(sb[:5])
            with self.assertRaises(TypeError):
                a.mask
            with self.assertRaises(TypeError):
                a.perm
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.ActNorm(0)

    def test_linear(self):
        # dim 2: parameters [[d0, u01], [l10, d1]], then b.
        with nvpflow.Linear(2) as lin:
            self.assertEqual((lin.kind, lin.num_params), ("linear", 6))
            d0, u01, l10, d1, b0, b1 = 0.3, -0.7, 0.4, -0.2, 1.0, -2.0
            lin.set_params([d0, u01, l10, d1, b0, b1])
            y, ld = lin.forward([[1.5, -0.5]])
            u0 = math.exp(d0) * 1.5 + u01 * -0.5
            u1 = math.exp(d1) * -0.5
            self.assertClose(y, [[u0 + b0, l10 * u0 + u1 + b1]])
            self.assertClose(ld, [d0 + d1])
            x, ildj = lin.inverse(y)
            self.assertClose(x, [[1.5, -0.5]])
            self.assertClose(ildj, [-(d0 + d1)])
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Linear(0)

    def test_coupling(self):
        with nvpflow.Coupling(3, mask=[1, 0, 1], hidden=(8, 4), seed=2) as c:
            self.assertEqual(c.kind, "affine coupling")
            self.assertTrue(c.is_coupling)
            self.assertEqual(c.mask, [1, 0, 1])
            self.assertEqual(c.hidden, (8, 4))
            self.assertEqual(c.num_params, 2 * 8 + 8 + 8 * 4 + 4 + 4 * 2 + 2)
            self.assertEqual(c.log_scale_clamp, 0.0)
            c.set_log_scale_clamp(2.5)
            self.assertEqual(c.log_scale_clamp, 2.5)
            with self.assertRaises(nvpflow.InvalidArgument):
                c.set_log_scale_clamp(-1.0)
        with nvpflow.Coupling(4, hidden=(), flip=True, seed=1) as c:
            self.assertEqual(c.mask, [0, 0, 1, 1])
            self.assertEqual(c.hidden, ())
        with nvpflow.Coupling(4, hidden=None, seed=1) as c:
            self.assertEqual(c.hidden, (512, 512))
        with nvpflow.Coupling(2, hidden=(8,), zero_init=True,
                              log_scale_clamp=3.0) as c:
            self.assertEqual(c.log_scale_clamp, 3.0)
            y, ld = c.forward([[0.5, -0.25]])
            self.assertEqual(to_list(y), [[0.5, -0.25]])
            self.assertEqual(to_list(ld), [0.0])
        with self.assertRaises(nvpflow.DimensionError):
            nvpflow.Coupling(3, mask=[1, 0])
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Coupling(3, mask=[1, 1, 1])
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Coupling(3, mask=[1, 2, 0])

    def test_layer_cannot_be_made_directly(self):
        with self.assertRaises(TypeError):
            nvpflow.Layer()

    def check_gradients(self, layer):
        """inverse_backward against central differences, for
        L = sum(w * x) + c * sum(ildj) with x, ildj = inverse(y)."""
        w, c = [0.3, -1.1, 0.7], 0.8
        with nvpflow.Rng(4) as rng:
            flat = to_list(rng.normal(12))
        y = [flat[3 * r:3 * r + 3] for r in range(4)]

        def loss(yy):
            x, ildj = layer.inverse(yy)
            return math.fsum(w[i] * v for row in to_list(x)
                             for i, v in enumerate(row)) + \
                c * math.fsum(to_list(ildj))

        dx = [list(w) for _ in y]
        dy, grad = layer.inverse_backward(y, dx, [c] * 4)
        dy, grad = to_list(dy), to_list(grad)
        self.assertEqual(len(grad), layer.num_params)
        h = 1e-2
        for r in range(4):
            for i in range(3):
                up = [list(row) for row in y]
                down = [list(row) for row in y]
                up[r][i] += h
                down[r][i] -= h
                fd = (loss(up) - loss(down)) / (2 * h)
                self.assertLessEqual(abs(fd - dy[r][i]), 1e-3 * (1 + abs(fd)),
                                     "%s dL/dy[%d][%d]" % (layer.kind, r, i))
        # Parameters: the gradient is added to zeros, and matches too.
        p0 = to_list(layer.params)
        for j in range(len(p0)):
            up, down = list(p0), list(p0)
            up[j] += h
            down[j] -= h
            layer.set_params(up)
            lu = loss(y)
            layer.set_params(down)
            ld = loss(y)
            fd = (lu - ld) / (2 * h)
            self.assertLessEqual(abs(fd - grad[j]), 2e-3 * (1 + abs(fd)),
                                 "%s dL/dparam[%d]" % (layer.kind, j))
        layer.set_params(p0)
        # dildj=None means zero.
        dy0, _ = layer.inverse_backward(y, dx)
        dy1, _ = layer.inverse_backward(y, dx, [0.0] * 4)
        self.assertEqual(raw(dy0), raw(dy1))
        with self.assertRaises(nvpflow.DimensionError):
            layer.inverse_backward(y, dx[:3])
        with self.assertRaises(nvpflow.DimensionError):
            layer.inverse_backward(y, dx, [c] * 3)

    def test_gradients_of_every_kind(self):
        layers = [nvpflow.Permutation(3, seed=1), nvpflow.ActNorm(3),
                  nvpflow.Linear(3),
                  # an affine conditioner: no ReLU kink near a difference
                  nvpflow.Coupling(3, hidden=(), seed=3)]
        layers[1].set_params([0.2, -0.3, 0.1, 0.5, -0.5, 1.0])
        layers[2].set_params([0.1, 0.2, -0.3, 0.4, -0.2, 0.5, -0.6, 0.7,
                              0.05, 0.1, 0.2, 0.3])
        for layer in layers:
            with layer:
                self.check_gradients(layer)


class PureLayerKindTests(LayerKindTests):
    pure = True


class FromLayersTests(Base):
    def count_frees(self, layers):
        """Replaces each layer's free function by a counting wrapper."""
        counts = [0] * len(layers)
        for i, layer in enumerate(layers):
            real = layer._free

            def counted(p, i=i, real=real):
                counts[i] += 1
                real(p)
            layer._free = counted
        return counts

    def test_ownership_moves_to_the_chain(self):
        layers, kinds = every_kind()
        counts = self.count_frees(layers)
        expected = b"".join(raw(layer.params) for layer in layers)
        chain = nvpflow.Chain.from_layers(layers)
        self.assertEqual(chain.layer_kinds, kinds)
        self.assertEqual(raw(chain.params), expected)
        for layer in layers:
            self.assertTrue(layer.owned_by_chain)
            self.assertTrue(layer.closed)
            self.assertIn("owned by a Chain", repr(layer))
            with self.assertRaises(nvpflow.ClosedError) as cm:
                layer.forward([[0.0, 0.0, 0.0]])
            self.assertIn("belongs to a Chain", str(cm.exception))
            layer.close()             # frees nothing
        del layers
        gc.collect()
        self.assertEqual(counts, [0] * 6)
        # The chain still works, and frees its layers once.
        lp = chain.log_prob([[0.1, 0.2, 0.3]])
        self.assertTrue(math.isfinite(to_list(lp)[0]))
        chain.close()

    def test_no_double_free(self):
        # Under glibc's malloc checks a double free aborts the process.
        code = (
            "import gc, sys; sys.path.insert(0, %r)\n"
            "import nvpflow\n"
            "layers = [nvpflow.Linear(3), nvpflow.ActNorm(3),\n"
            "          nvpflow.Coupling(3, hidden=(8,), seed=1),\n"
            "          nvpflow.Permutation(3, seed=2)]\n"
            "chain = nvpflow.Chain.from_layers(layers)\n"
            "for l in layers: l.close()\n"
            "del layers; gc.collect()\n"
            "chain.log_prob([[0.0, 1.0, 2.0]])\n"
            "chain.close(); del chain; gc.collect()\n"
            "print('ok')\n" % PKG_PARENT)
        env = dict(os.environ, MALLOC_CHECK_="3", MALLOC_PERTURB_="165")
        r = subprocess.run([sys.executable, "-c", code], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "ok"),
                         r.stderr)

    def test_failure_takes_nothing(self):
        a, b, c = nvpflow.Linear(3), nvpflow.ActNorm(3), nvpflow.ActNorm(4)
        counts = self.count_frees([a, b, c])
        with self.assertRaises(nvpflow.DimensionError) as cm:
            nvpflow.Chain.from_layers([a, b, c])
        self.assertIn("layers[2]", cm.exception.message)
        with self.assertRaises(nvpflow.InvalidArgument) as cm:
            nvpflow.Chain.from_layers([a, b, a])   # the same layer twice
        self.assertIn("same layer", cm.exception.message)
        for layer in (a, b, c):
            self.assertFalse(layer.owned_by_chain)
            self.assertFalse(layer.closed)
        y, _ = b.forward([[1.0, 2.0, 3.0]])
        self.assertEqual(to_list(y), [[1.0, 2.0, 3.0]])
        # Wrong arguments, refused before the library is asked.
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Chain.from_layers([])
        with self.assertRaises(TypeError):
            nvpflow.Chain.from_layers([a, 3])
        with nvpflow.Chain.from_layers([a]) as chain:
            with self.assertRaises(TypeError) as cm:
                nvpflow.Chain.from_layers([b, chain.layer(0)])
            self.assertIn("LayerView", str(cm.exception))
            # a taken layer cannot go into a second chain
            with self.assertRaises(nvpflow.ClosedError):
                nvpflow.Chain.from_layers([b, a])
            self.assertFalse(b.owned_by_chain)
        for layer in (a, b, c):
            layer.close()
        self.assertEqual(counts, [0, 1, 1])   # a went to the chain

    def test_views(self):
        layers, kinds = every_kind(zero_init=False)
        perm = layers[3].perm
        chain = nvpflow.Chain.from_layers(layers)
        with chain:
            views = chain.layers
            self.assertEqual([v.kind for v in views], kinds)
            self.assertEqual([v.index for v in views], list(range(6)))
            offset = 0
            params = to_list(chain.params)
            for v in views:
                self.assertEqual(v.offset, offset)
                self.assertEqual(v.dim, 3)
                self.assertEqual(to_list(v.params),
                                 params[offset:offset + v.num_params])
                offset += v.num_params
            self.assertEqual(offset, chain.num_params)
            self.assertEqual(chain.layer(3).perm, perm)
            self.assertEqual(chain.layer(-1).perm, [2, 0, 1])
            self.assertEqual(chain.layer(4).mask, [1, 0, 1])
            self.assertEqual(chain.layer(4).hidden, (16, 8))
            with self.assertRaises(IndexError):
                chain.layer(6)
            with self.assertRaises(TypeError):
                chain.layer(1).mask
            self.assertFalse(hasattr(views[0], "set_params"))
            # A view maps as its layer does inside the chain: composing
            # every inverse gives the chain's inverse.
            y = [[0.3, -1.2, 0.8], [1.5, 0.1, -0.4]]
            x, total = y, [0.0, 0.0]
            for v in reversed(views):
                x, ildj = v.inverse(x)
                total = [t + float(i) for t, i in zip(total, to_list(ildj))]
            cx, cildj = chain.inverse(y)
            self.assertClose(x, cx, 1e-5)
            self.assertClose(total, cildj, 1e-5)
            # set_log_scale_clamp reaches every coupling; the property
            # reads the first coupling, not layer 0.
            chain.set_log_scale_clamp(2.0)
            self.assertEqual(chain.log_scale_clamp, 2.0)
            self.assertEqual(views[2].log_scale_clamp, 2.0)
        with self.assertRaises(nvpflow.ClosedError):
            views[0].kind
        self.assertIn("closed", repr(views[0]))


class PureFromLayersTests(FromLayersTests):
    pure = True


class InitTrainSaveTests(Base):
    N = 600

    def setUp(self):
        super().setUp()
        self.rows = gaussian_rows(self.N, seed=11)
        self.fit = gaussian_fit_pure(self.rows)
        if HAVE_NUMPY:
            self.assertAlmostEqual(gaussian_fit_numpy(self.rows), self.fit,
                                   places=9)

    def test_linear_flow_is_the_gaussian_fit(self):
        with nvpflow.Chain.from_layers([nvpflow.Linear(3)]) as flow:
            before = mean(flow.log_prob(self.rows))
            self.assertIs(flow.init_from_data(self.rows), flow)
            after = mean(flow.log_prob(self.rows))
        self.assertLess(before, self.fit - 1.0)
        self.assertAlmostEqual(after, self.fit, delta=2e-3)

    def test_every_kind_starts_as_the_gaussian_fit(self):
        layers, _ = every_kind()
        with nvpflow.Chain.from_layers(layers) as flow:
            flow.set_threads(1)
            flow.init_from_data(self.rows)
            self.assertAlmostEqual(mean(flow.log_prob(self.rows)), self.fit,
                                   delta=2e-3)

    def test_init_errors_change_nothing(self):
        layers, _ = every_kind()
        with nvpflow.Chain.from_layers(layers) as flow:
            before = raw(flow.params)
            with self.assertRaises(nvpflow.InvalidArgument):
                flow.init_from_data(self.rows[:1])
            bad = [list(r) for r in self.rows]
            bad[3][1] = float("inf")
            with self.assertRaises(nvpflow.NonFinite) as cm:
                flow.init_from_data(bad)
            self.assertIn("init_from_data", cm.exception.message)
            with self.assertRaises(nvpflow.DimensionError):
                flow.init_from_data([[1.0, 2.0]] * 5)
            self.assertEqual(raw(flow.params), before)

    def test_train_save_load(self):
        layers, kinds = every_kind()
        with nvpflow.Chain.from_layers(layers) as flow, \
                nvpflow.Adam(flow, lr=1e-3) as opt, nvpflow.Rng(7) as rng:
            flow.set_threads(1)
            flow.init_from_data(self.rows)
            start = raw(flow.params)
            losses = [flow.train_step(opt, rng, self.rows, 64)
                      for _ in range(20)]
            self.assertTrue(all(math.isfinite(v) for v in losses))
            self.assertEqual(opt.steps, 20)
            self.assertNotEqual(raw(flow.params), start)
            lp = raw(flow.log_prob(self.rows))
            data = flow.to_bytes()
            back, scaler = nvpflow.Chain.from_bytes(data)
            with back:
                self.assertIsNone(scaler)
                self.assertEqual(back.layer_kinds, kinds)
                self.assertEqual(raw(back.params), raw(flow.params))
                self.assertEqual(raw(back.log_prob(self.rows)), lp)
                self.assertEqual(back.to_bytes(), data)
                self.assertEqual(back.layer(3).perm, flow.layer(3).perm)
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "layers.nvp")
                with nvpflow.Scaler(3) as sc:
                    sc.fit(self.rows)
                    flow.save(path, scaler=sc)
                loaded, sc2 = nvpflow.Chain.load(path)
                with loaded, sc2:
                    self.assertEqual(loaded.layer_kinds, kinds)
                    self.assertEqual(raw(loaded.log_prob(self.rows)), lp)


class ColumnNameTests(Base):
    """Column names travel with the model (format version 2)."""

    def test_names_round_trip(self):
        with nvpflow.Chain.alternating(3, seed=4) as c:
            self.assertIsNone(c.column_names)
            plain = c.to_bytes()
            self.assertEqual(plain[8], 1)
            c.set_column_names(["sepal length", "\u00fcn\u00efcode", "x"])
            self.assertEqual(c.column_names,
                             ["sepal length", "\u00fcn\u00efcode", "x"])
            for bad in (["a", "", "c"], ["a", "b\tc", "d"], ["a", "b"]):
                with self.assertRaises(nvpflow.NvpError):
                    c.set_column_names(bad)
            with self.assertRaises(ValueError):
                c.set_column_names(["a", "b\0c", "d"])
            with self.assertRaises(TypeError):
                c.set_column_names(["a", 2, "d"])
            self.assertEqual(c.column_names[0], "sepal length")
            data = c.to_bytes()
            self.assertEqual(data[8], 2)
            back, _ = nvpflow.Chain.from_bytes(data)
            with back:
                self.assertEqual(back.column_names, c.column_names)
                back.set_column_names(None)
                self.assertIsNone(back.column_names)
                self.assertEqual(back.to_bytes()[8], 1)

    def test_scaler_names(self):
        with nvpflow.Scaler(2) as s:
            self.assertIsNone(s.column_names)
            s.set_column_names(["given", "\u00fcn\u00efcode"])
            self.assertEqual(s.column_names, ["given", "\u00fcn\u00efcode"])
            with self.assertRaises(nvpflow.NvpError):
                s.set_column_names(["only one"])
            with self.assertRaises(TypeError):
                s.set_column_names(["a", 3])
            self.assertEqual(s.column_names[0], "given")
            s.set_column_names(None)
            self.assertIsNone(s.column_names)


class PureInitTrainSaveTests(InitTrainSaveTests):
    pure = True


class KernelTests(Base):
    def expected_best(self):
        flags = cpu_flags()
        if flags is None or "sse2" not in flags:
            return None   # not an x86 Linux: no independent answer
        if "avx512f" in flags:
            return nvpflow.KERNELS_AVX512
        if "avx2" in flags and "fma" in flags:
            return nvpflow.KERNELS_AVX2
        return nvpflow.KERNELS_PORTABLE

    def check_kernels(self, obj):
        best = self.expected_best()
        levels = (nvpflow.KERNELS_PORTABLE, nvpflow.KERNELS_AVX2,
                  nvpflow.KERNELS_AVX512)
        if best is not None:
            self.assertEqual(obj.kernels, best)
        else:
            self.assertIn(obj.kernels, levels)
        obj.set_kernels("portable")
        self.assertEqual(obj.kernels, nvpflow.KERNELS_PORTABLE)
        for level in levels[1:]:
            obj.set_kernels(nvpflow.KERNELS_PORTABLE)
            try:
                obj.set_kernels(level)
            except nvpflow.Unsupported as e:
                self.assertEqual(e.code, -11)
                self.assertTrue(e.message)
                self.assertEqual(obj.kernels, nvpflow.KERNELS_PORTABLE)
                if best is not None:
                    self.assertGreater(level, best)
            else:
                self.assertEqual(obj.kernels, level)
                if best is not None:
                    self.assertLessEqual(level, best)
        obj.set_kernels(nvpflow.KERNELS_PORTABLE)
        with self.assertRaises(nvpflow.InvalidArgument):
            obj.set_kernels(7)            # refused by the library
        with self.assertRaises(nvpflow.InvalidArgument):
            obj.set_kernels("sse9")       # refused by the bindings
        with self.assertRaises(TypeError):
            obj.set_kernels(1.5)
        self.assertEqual(obj.kernels, nvpflow.KERNELS_PORTABLE)
        obj.set_kernels(nvpflow.KERNELS_AUTO)
        self.assertIn(obj.kernels, levels)
        if best is not None:
            self.assertEqual(obj.kernels, best)

    def test_chain_coupling_adam(self):
        with nvpflow.Chain.alternating(2, layers=2, hidden=(8,),
                                       seed=1) as chain:
            self.check_kernels(chain)
            with nvpflow.Adam(chain) as opt:
                self.check_kernels(opt)
        with nvpflow.Coupling(3, hidden=(8,), seed=1) as c:
            self.check_kernels(c)

    def test_portable_results_do_not_depend_on_the_setting_of_others(self):
        xy, _ = nvpflow.two_moons(64, 0.05, seed=1)
        with nvpflow.Chain.alternating(2, layers=2, hidden=(8,),
                                       seed=1) as a, \
                nvpflow.Chain.alternating(2, layers=2, hidden=(8,),
                                          seed=1) as b:
            a.set_kernels("portable")
            b.set_kernels("portable")
            self.assertEqual(raw(a.log_prob(xy)), raw(b.log_prob(xy)))

    def test_unsupported_error(self):
        err = nvpflow.errors.error_for(-11, "no AVX-512 here")
        self.assertIsInstance(err, nvpflow.Unsupported)
        self.assertIsInstance(err, RuntimeError)
        self.assertIsInstance(err, nvpflow.NvpError)
        self.assertEqual((err.code, err.message), (-11, "no AVX-512 here"))
        self.assertEqual(err.reason, nvpflow.strerror(-11))
        self.assertNotEqual(err.reason, "unknown error")
        self.assertEqual(_lib.EUNSUPPORTED, -11)

    def test_busy_error(self):
        err = nvpflow.errors.error_for(-12, "in use")
        self.assertIsInstance(err, nvpflow.Busy)
        self.assertIsInstance(err, RuntimeError)
        self.assertEqual(err.reason, nvpflow.strerror(-12))
        self.assertNotEqual(err.reason, "unknown error")

    def test_adam_getters(self):
        with nvpflow.Adam(4, lr=2e-3, betas=(0.8, 0.99), eps=1e-7) as opt:
            self.assertAlmostEqual(opt.betas[0], 0.8, places=6)
            self.assertAlmostEqual(opt.betas[1], 0.99, places=6)
            self.assertAlmostEqual(opt.eps, 1e-7, places=12)
            opt.betas = (0.5, 0.9)
            opt.eps = 1e-6
            self.assertEqual(opt.betas, (0.5, 0.8999999761581421))
            self.assertAlmostEqual(opt.eps, 1e-6, places=12)
            with self.assertRaises(nvpflow.InvalidArgument):
                opt.betas = (1.0, 0.9)


class PyTorchRefusesOtherKinds(unittest.TestCase):
    def test_refused_with_a_clear_message(self):
        layers = [nvpflow.Coupling(2, hidden=(8,), seed=1),
                  nvpflow.Permutation(perm=[1, 0]),
                  nvpflow.Coupling(2, hidden=(8,), seed=2)]
        with nvpflow.Chain.from_layers(layers) as chain:
            for call in (lambda: nvpflow.pytorch.to_state_dict(
                             chain, tensors=False),
                         lambda: nvpflow.pytorch.to_state_dict(
                             chain, tensors=False, check_masks=False),
                         lambda: nvpflow.pytorch.layer_masks(chain)):
                with self.assertRaises(ValueError) as cm:
                    call()
                msg = str(cm.exception)
                self.assertIn("layer 1 is a permutation layer", msg)
                self.assertIn("affine couplings only", msg)

    def test_couplings_built_from_layers_convert(self):
        layers = [nvpflow.Coupling(2, hidden=(8,), seed=1),
                  nvpflow.Coupling(2, hidden=(8,), flip=True, seed=2)]
        with nvpflow.Chain.from_layers(layers) as chain:
            sd = nvpflow.pytorch.to_state_dict(chain, tensors=False)
            with nvpflow.pytorch.from_state_dict(sd) as back:
                self.assertEqual(raw(back.params), raw(chain.params))


class PrototypeTests(unittest.TestCase):
    """Every function of nvpflow.h is declared to ctypes, with the types
    of the header's declaration, and every function the package calls is
    one of them."""

    _P, _PP = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
    _SCALARS = {"size_t": ctypes.c_size_t, "int": ctypes.c_int,
                "unsigned": ctypes.c_uint, "float": ctypes.c_float,
                "double": ctypes.c_double, "uint64_t": ctypes.c_uint64}
    _POINTEES = {"float": ctypes.POINTER(ctypes.c_float),
                 "size_t": ctypes.POINTER(ctypes.c_size_t),
                 "uint64_t": ctypes.POINTER(ctypes.c_uint64),
                 "int": ctypes.POINTER(ctypes.c_int),
                 "char": ctypes.c_char_p}

    def ctype(self, decl, typedefs=None):
        """The ctypes type for a C type (a parameter without its name);
        typedefs maps the header's function-pointer types to theirs."""
        decl = re.sub(r"\bconst\b", "", decl).strip()
        stars = decl.count("*")
        base = decl.replace("*", "").strip()
        if stars == 0 and typedefs and base in typedefs:
            return typedefs[base]
        if stars == 0:
            return None if base == "void" else self._SCALARS[base]
        if stars >= 2:
            return self._PP
        return self._POINTEES.get(base, self._P)

    def declarations(self):
        if not os.path.isfile(HEADER):
            self.skipTest("no include/nvpflow.h next to the package")
        with open(HEADER) as f:
            text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
        def params_of(args):
            return [] if args.strip() == "void" else [
                re.sub(r"\w+\s*$", "", a.strip()) for a in args.split(",")]

        # Callback types (typedef R (*name)(args);) as the CFUNCTYPE that
        # the header's declaration implies; ctypes caches CFUNCTYPE types,
        # so the one _lib declares is this very object when they agree.
        typedefs = {}
        for ret, name, args in re.findall(
                r"typedef\s+([^;()]*?)\(\s*\*\s*(nvp_\w+)\s*\)\s*"
                r"\(([^)]*)\)\s*;", text):
            typedefs[name] = ctypes.CFUNCTYPE(
                self.ctype(ret), *[self.ctype(p) for p in params_of(args)])
        self.assertIn("nvp_log_density_fn", typedefs)
        self.assertIs(typedefs["nvp_log_density_fn"], _lib.LOG_DENSITY_FN)
        out = {}
        for ret, name, args in re.findall(
                r"NVP_API\s+([^;()]*?)\b(nvp_\w+)\s*\(([^)]*)\)\s*;", text):
            out[name] = (self.ctype(ret, typedefs),
                         [self.ctype(p, typedefs) for p in params_of(args)])
        self.assertGreater(len(out), 100)
        return out

    def test_every_function_declared_as_in_the_header(self):
        decls = self.declarations()
        self.assertEqual(sorted(set(decls) - set(_lib._PROTOTYPES)), [],
                         "functions of nvpflow.h without a prototype")
        self.assertEqual(sorted(set(_lib._PROTOTYPES) - set(decls)), [],
                         "prototypes of functions nvpflow.h lacks")
        for name, (restype, argtypes) in sorted(_lib._PROTOTYPES.items()):
            want_res, want_args = decls[name]
            self.assertEqual(restype, want_res, name + " restype")
            self.assertEqual(list(argtypes), want_args, name + " argtypes")

    def test_package_calls_only_declared_functions(self):
        pkg = os.path.join(PKG_PARENT, "nvpflow")
        called = set()
        for fn in os.listdir(pkg):
            if fn.endswith(".py"):
                with open(os.path.join(pkg, fn)) as f:
                    called |= set(re.findall(r"\blib\.(nvp_\w+)", f.read()))
        self.assertGreater(len(called), 50)
        self.assertEqual(sorted(called - set(_lib._PROTOTYPES)), [])


if __name__ == "__main__":
    unittest.main()
