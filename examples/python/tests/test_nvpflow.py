# SPDX-License-Identifier: MIT
"""Tests of the nvpflow ctypes bindings.

Run from the repository root (after `make`):
    python3 -m unittest discover -s examples/python/tests -v
They pass with and without numpy: without it the numpy-specific tests are
skipped; with it, the list/array.array path is exercised as well by
switching the package's numpy use off (PureListTests).
"""
import array
import gc
import math
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(HERE)  # examples/python
if PKG_PARENT not in sys.path:
    sys.path.insert(0, PKG_PARENT)

import nvpflow  # noqa: E402
from nvpflow import _arrays  # noqa: E402

HAVE_NUMPY = nvpflow.have_numpy()
if HAVE_NUMPY:
    import numpy as np


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
    """Bytes of a float32 vector result, for bitwise comparisons."""
    if HAVE_NUMPY and isinstance(a, np.ndarray):
        return a.astype(np.float32).tobytes()
    if isinstance(a, array.array):
        return a.tobytes()
    return array.array("f", a).tobytes()


def moons(n=512, seed=1, scaled=True):
    with nvpflow.Rng(seed) as rng:
        xy, labels = nvpflow.two_moons(n, 0.05, rng)
    if scaled:
        with nvpflow.Scaler(2) as sc:
            xy = sc.fit_transform(xy)
    return xy, labels


def small_chain(seed=0, **kw):
    kw.setdefault("layers", 4)
    kw.setdefault("hidden", (32, 32))
    c = nvpflow.Chain.alternating(2, seed=seed, **kw)
    c.set_threads(1)
    return c


class Base(unittest.TestCase):
    pure = False  # True: run with the package's numpy support switched off

    def setUp(self):
        self._saved_np = _arrays.np
        if self.pure:
            _arrays.np = None

    def tearDown(self):
        _arrays.np = self._saved_np

    def assertClose(self, a, b, tol=1e-4):
        a, b = to_list(a), to_list(b)
        self.assertEqual(len(a), len(b))
        for u, v in zip(a, b):
            if isinstance(u, list):
                self.assertClose(u, v, tol)
            else:
                self.assertLessEqual(abs(u - v), tol * (1 + abs(v)),
                                     "%r vs %r" % (u, v))


class CoreTests(Base):
    # ----------------------------------------------------------- basics
    def test_version(self):
        v = nvpflow.version()
        self.assertRegex(v, r"^\d+\.\d+\.\d+$")
        major, minor, patch = map(int, v.split("."))
        self.assertEqual(nvpflow.version_number(),
                         major * 10000 + minor * 100 + patch)
        self.assertEqual(nvpflow.__version__, v)
        self.assertEqual(nvpflow.strerror(-2), "dimension or length mismatch")

    def test_rng_deterministic(self):
        with nvpflow.Rng(5) as a, nvpflow.Rng(5) as b:
            self.assertEqual(raw(a.normal(10)), raw(b.normal(10)))
            first = raw(a.uniform(7))
            a.seed(5)
            a.normal(10)
            self.assertEqual(raw(a.uniform(7)), first)
            idx = to_list(a.index(100, 3))
            self.assertTrue(all(0 <= i < 3 for i in idx))
            self.assertEqual(len(to_list(b.uniform(4))), 4)
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Rng(-1)

    def test_two_moons(self):
        with nvpflow.Rng(3) as rng:
            xy, labels = nvpflow.two_moons(101, 0.05, rng)
        xy, labels = to_list(xy), to_list(labels)
        self.assertEqual(len(xy), 101)
        self.assertTrue(all(len(r) == 2 for r in xy))
        self.assertEqual(labels.count(0), 50)
        self.assertEqual(labels.count(1), 51)
        # seed form gives the same data as an Rng with that seed
        again, _ = nvpflow.two_moons(101, 0.05, seed=3)
        self.assertEqual(to_list(again), xy)
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.two_moons(10, -1.0, seed=0)

    def test_scaler(self):
        xy, _ = moons(400, scaled=False)
        with nvpflow.Scaler(2) as sc:
            self.assertEqual(to_list(sc.mean), [0.0, 0.0])
            self.assertEqual(to_list(sc.sd), [1.0, 1.0])
            z = sc.fit(xy).transform(xy)
            cols = list(zip(*to_list(z)))
            for c in cols:
                m = sum(c) / len(c)
                sd = math.sqrt(sum((v - m) ** 2 for v in c) / len(c))
                self.assertAlmostEqual(m, 0.0, places=4)
                self.assertAlmostEqual(sd, 1.0, places=3)
            self.assertClose(sc.inverse_transform(z), xy, 1e-5)
            self.assertAlmostEqual(
                sc.log_det, sum(math.log(s) for s in to_list(sc.sd)),
                places=5)
            sc.set([1.0, 2.0], [3.0, 4.0])
            self.assertEqual(to_list(sc.mean), [1.0, 2.0])
            self.assertEqual(to_list(sc.transform([[4.0, 6.0]])),
                             [[1.0, 1.0]])
            with self.assertRaises(nvpflow.InvalidArgument):
                sc.set([0.0, 0.0], [1.0, 0.0])  # sd must be > 0
            with self.assertRaises(nvpflow.DimensionError):
                sc.set([0.0], [1.0])
            self.assertEqual(sc.dim, 2)

    # ------------------------------------------------------------ flows
    def test_train_loss_drops(self):
        data, _ = moons(1000)
        with small_chain(seed=0, hidden=(64, 64)) as flow, \
                nvpflow.Adam(flow, lr=2e-3) as opt, \
                nvpflow.Rng(7) as rng:
            nll_before = -sum(to_list(flow.log_prob(data))) / 1000
            losses = [flow.train_step(opt, rng, data, 128)
                      for _ in range(500)]
            nll_after = -sum(to_list(flow.log_prob(data))) / 1000
            self.assertEqual(opt.steps, 500)
        self.assertTrue(all(math.isfinite(v) for v in losses))
        first = sum(losses[:50]) / 50
        last = sum(losses[-50:]) / 50
        self.assertLess(last, first - 0.1, (first, last))
        self.assertLess(nll_after, nll_before - 0.5, (nll_before, nll_after))

    def test_train_step_function_and_adam_step(self):
        data, _ = moons(256)
        with small_chain(seed=1) as flow, \
                nvpflow.Adam(flow.num_params, lr=1e-2) as opt, \
                nvpflow.Rng(2) as rng:
            loss0 = nvpflow.train_step(flow, opt, rng, data, 64)
            self.assertTrue(math.isfinite(loss0))
            # The manual loop: nll_grad + Adam.step on the chain.
            l_start, _ = flow.nll_grad(data)
            for _ in range(20):
                loss, grad = flow.nll_grad(data)
                self.assertEqual(len(grad), flow.num_params)
                opt.step(flow, grad)
            l_end, _ = flow.nll_grad(data)
            self.assertLess(l_end, l_start)
            self.assertEqual(opt.steps, 21)
            opt.reset()
            self.assertEqual(opt.steps, 0)
            # Adam.step on a plain writable vector
            p = flow.params
            p_before = raw(p)
            _, g = flow.nll_grad(data)
            opt.step(p, g)
            self.assertNotEqual(raw(p), p_before)

    def test_sample_and_log_prob_shapes(self):
        with small_chain(seed=2) as flow, nvpflow.Rng(9) as rng:
            y = to_list(flow.sample(50, rng))
            self.assertEqual(len(y), 50)
            self.assertTrue(all(len(r) == 2 for r in y))
            lp = to_list(flow.log_prob(y))
            self.assertEqual(len(lp), 50)
            self.assertTrue(all(math.isfinite(v) for v in lp))
            y2, lp2 = flow.sample(20, 123, with_log_prob=True)
            self.assertEqual(len(to_list(y2)), 20)
            self.assertClose(lp2, flow.log_prob(y2), 1e-3)
            # a row with NaN gets NaN, not an error
            lp3 = to_list(flow.log_prob([[0.0, 0.0], [float("nan"), 1.0]]))
            self.assertTrue(math.isfinite(lp3[0]) and math.isnan(lp3[1]))
            with self.assertRaises(nvpflow.InvalidArgument):
                flow.sample(0, rng)  # n == 0: refused by the library
            with self.assertRaises(nvpflow.InvalidArgument):
                flow.sample(5, None)

    def test_inverse_of_forward(self):
        x, _ = moons(200, seed=4)
        with small_chain(seed=3) as flow:
            y, logdet = flow.forward(x)
            x2, ildj = flow.inverse(y)
            self.assertClose(x2, x, 1e-4)
            self.assertClose(ildj, [-v for v in to_list(logdet)], 1e-4)
            stages = to_list(flow.forward_trace(x))
            self.assertEqual(len(stages), flow.num_layers + 1)
            self.assertEqual(stages[0], to_list(x))
            self.assertEqual(stages[-1], to_list(y))

    def test_save_load_bitwise(self):
        data, _ = moons(300, scaled=False)
        with small_chain(seed=5) as flow, nvpflow.Scaler(2) as sc:
            sc.fit(data)
            blob = flow.to_bytes()
            c2, s2 = nvpflow.Chain.from_bytes(blob)
            with c2:
                self.assertIsNone(s2)
                self.assertEqual(raw(c2.params), raw(flow.params))
                self.assertEqual(c2.to_bytes(), blob)
                self.assertEqual(raw(c2.log_prob(data)),
                                 raw(flow.log_prob(data)))
            # bytearray / memoryview inputs work too
            c3, _ = nvpflow.Chain.from_bytes(bytearray(blob))
            c3.close()
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "model.nvp")
                flow.save(path, scaler=sc)
                c4, s4 = nvpflow.Chain.load(path)
                with c4, s4:
                    self.assertEqual(raw(c4.params), raw(flow.params))
                    self.assertEqual(raw(s4.mean), raw(sc.mean))
                    self.assertEqual(raw(s4.sd), raw(sc.sd))
                    self.assertEqual(c4.to_bytes(s4),
                                     flow.to_bytes(scaler=sc))
                with open(path, "rb") as f:
                    self.assertEqual(f.read(), flow.to_bytes(sc))

    def test_corrupt_bytes_raise_format_error(self):
        with small_chain(seed=6) as flow:
            blob = bytearray(flow.to_bytes())
        bad = bytearray(blob)
        bad[len(bad) // 2] ^= 0x40
        with self.assertRaises(nvpflow.FormatError) as cm:
            nvpflow.Chain.from_bytes(bytes(bad))
        self.assertEqual(cm.exception.code, -7)
        self.assertTrue(cm.exception.message)
        with self.assertRaises(nvpflow.FormatError):
            nvpflow.Chain.from_bytes(bytes(blob[:len(blob) // 3]))
        with self.assertRaises(nvpflow.FormatError):
            nvpflow.Chain.from_bytes(b"not a model" * 10)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.nvp")
            with open(path, "wb") as f:
                f.write(bytes(bad))
            with self.assertRaises(nvpflow.FormatError):
                nvpflow.Chain.load(path)
            with self.assertRaises(nvpflow.FileError) as cm:
                nvpflow.Chain.load(os.path.join(d, "missing.nvp"))
            self.assertIsInstance(cm.exception, OSError)

    def test_nan_data_raises_nonfinite(self):
        nan = float("nan")
        data = [[nan, 0.5]] * 64
        with small_chain(seed=7) as flow, nvpflow.Adam(flow) as opt, \
                nvpflow.Rng(1) as rng:
            before = raw(flow.params)
            with self.assertRaises(nvpflow.NonFinite) as cm:
                flow.train_step(opt, rng, data, 16)
            self.assertIsInstance(cm.exception, ArithmeticError)
            self.assertIn("nvp_", cm.exception.message)
            self.assertEqual(raw(flow.params), before)  # unchanged
            self.assertEqual(opt.steps, 0)
            with self.assertRaises(nvpflow.NonFinite):
                flow.nll_grad(data)
            p = to_list(flow.params)
            p[3] = float("inf")
            with self.assertRaises(nvpflow.NonFinite):
                flow.set_params(p)
            self.assertEqual(raw(flow.params), before)
            with self.assertRaises(nvpflow.NonFinite):
                opt.step(flow, [nan] * flow.num_params)
        with nvpflow.Scaler(2) as sc, self.assertRaises(nvpflow.NonFinite):
            sc.fit(data)

    def test_wrong_dims_raise_dimension_error(self):
        with small_chain(seed=8) as flow:
            for bad in ([[1.0, 2.0, 3.0]], [[1.0, 2.0], [3.0]],
                        [1.0, 2.0], [[1.0], [2.0]]):
                with self.assertRaises(nvpflow.DimensionError, msg=bad):
                    flow.log_prob(bad)
            with self.assertRaises(nvpflow.DimensionError):
                flow.forward([[0.0, 0.0, 0.0]])
            with self.assertRaises(nvpflow.DimensionError):
                flow.set_params([0.0] * (flow.num_params - 1))
            with self.assertRaises(nvpflow.DimensionError):
                flow.log_prob(array.array("f", [1.0, 2.0, 3.0]))
            # checked by the C library: optimizer for another size
            with nvpflow.Adam(10) as opt, nvpflow.Rng(0) as rng:
                with self.assertRaises(nvpflow.DimensionError) as cm:
                    flow.train_step(opt, rng, [[0.0, 0.0]], 1)
                self.assertIn("optimizer", cm.exception.message)
                with self.assertRaises(nvpflow.DimensionError):
                    opt.step(flow, [0.0] * 10)
            # scaler of another dim (C: NVP_EDIM)
            with nvpflow.Scaler(3) as sc3:
                with self.assertRaises(nvpflow.DimensionError) as cm:
                    flow.to_bytes(sc3)
                self.assertEqual(cm.exception.code, -2)
                self.assertIsInstance(cm.exception, ValueError)

    def test_flat_array_input(self):
        with small_chain(seed=9) as flow:
            pts = [[0.1, 0.2], [0.3, -0.4], [1.0, 2.0]]
            flat = array.array("f", [v for r in pts for v in r])
            self.assertEqual(raw(flow.log_prob(flat)),
                             raw(flow.log_prob(pts)))
            dflat = array.array("d", flat)
            self.assertEqual(raw(flow.log_prob(dflat)),
                             raw(flow.log_prob(pts)))
            self.assertEqual(len(flat), 6)  # still resizable (no export)
            flat.append(0.0)
            flat.pop()

    def test_closed_handle_raises(self):
        flow = small_chain(seed=10)
        rng = nvpflow.Rng(0)
        flow.close()
        self.assertTrue(flow.closed)
        flow.close()  # idempotent
        self.assertIn("closed", repr(flow))
        with self.assertRaises(nvpflow.ClosedError):
            flow.log_prob([[0.0, 0.0]])
        with self.assertRaises(nvpflow.ClosedError):
            _ = flow.num_params
        with self.assertRaises(nvpflow.InvalidArgument):  # base class
            flow.sample(3, rng)
        with self.assertRaises(ValueError):
            with flow:
                pass
        live = small_chain(seed=10)
        rng.close()
        with self.assertRaises(nvpflow.ClosedError):
            live.sample(3, rng)
        with self.assertRaises(nvpflow.ClosedError):
            live.train_step(nvpflow.Adam(live), rng, [[0.0, 0.0]], 1)
        live.close()

    def test_context_manager_frees(self):
        freed = []

        def track(obj):
            orig = obj._free

            def free(p):
                freed.append(type(obj).__name__)
                orig(p)
            obj._free = free
            return obj

        with track(small_chain(seed=11)) as c, \
                track(nvpflow.Rng(1)) as r, \
                track(nvpflow.Scaler(2)) as s, \
                track(nvpflow.Adam(c)) as o:
            self.assertFalse(c.closed)
        self.assertTrue(c.closed and r.closed and s.closed and o.closed)
        self.assertEqual(sorted(freed), ["Adam", "Chain", "Rng", "Scaler"])
        with self.assertRaises(nvpflow.ClosedError):
            c.sample(1, 0)
        # an exception inside the block still frees
        freed.clear()
        try:
            with track(small_chain(seed=12)) as c2:
                raise KeyError("boom")
        except KeyError:
            pass
        self.assertTrue(c2.closed)
        self.assertEqual(freed, ["Chain"])
        # garbage collection is the fallback
        freed.clear()
        c3 = track(small_chain(seed=13))
        del c3
        gc.collect()
        self.assertEqual(freed, ["Chain"])

    def test_precision(self):
        # The default, the refusals, and where the CPU runs bfloat16:
        # log densities that move a little and come back in float.
        with nvpflow.Chain.alternating(16, layers=4, hidden=(64, 64),
                                       seed=15) as flow:
            flow.set_threads(1)
            self.assertEqual(flow.precision, nvpflow.PRECISION_FP32)
            self.assertTrue(nvpflow.precision_supported("fp32"))
            with self.assertRaises(nvpflow.InvalidArgument):
                flow.set_precision("fp16")
            with self.assertRaises(nvpflow.InvalidArgument):
                flow.set_precision(9)
            pts = [[2.0 * math.sin(0.37 * (16 * i + j)) for j in range(16)]
                   for i in range(100)]
            flow.set_params([0.01 * ((i % 7) - 3)
                             for i in range(flow.num_params)])
            lp32 = flow.log_prob(pts)
            if not nvpflow.precision_supported("bf16"):
                with self.assertRaises(nvpflow.Unsupported):
                    flow.set_precision("bf16")
                self.assertEqual(flow.precision, nvpflow.PRECISION_FP32)
                return
            flow.set_precision("bf16")
            self.assertEqual(flow.precision, nvpflow.PRECISION_BF16)
            lp16 = flow.log_prob(pts)
            self.assertNotEqual(raw(lp16), raw(lp32))
            self.assertClose(lp16, lp32, tol=0.05)
            flow.set_precision(nvpflow.PRECISION_FP32)
            self.assertEqual(raw(flow.log_prob(pts)), raw(lp32))

    def test_errors_carry_library_message(self):
        with small_chain(seed=14) as flow:
            with self.assertRaises(nvpflow.InvalidArgument) as cm:
                flow.set_threads(5000)
            e = cm.exception
            self.assertEqual(e.code, -1)
            self.assertIn("nvp_chain_set_threads", e.message)
            self.assertEqual(e.reason, "invalid argument")
            with self.assertRaises(nvpflow.InvalidArgument):
                flow.set_log_scale_clamp(-1.0)
            flow.set_log_scale_clamp(3.0)
            self.assertEqual(flow.log_scale_clamp, 3.0)
            flow.set_threads(2)
            self.assertEqual(flow.threads, 2)
        with self.assertRaises(nvpflow.InvalidArgument) as cm:
            nvpflow.Adam(10, lr=-1.0)
        self.assertIn("lr", cm.exception.message)
        with self.assertRaises(nvpflow.InvalidArgument):
            nvpflow.Chain.alternating(1, seed=0)  # dim >= 2
        with self.assertRaises(TypeError):
            nvpflow.Chain()
        e2 = pickle.loads(pickle.dumps(e))
        self.assertIs(type(e2), nvpflow.InvalidArgument)
        self.assertEqual((e2.code, e2.message), (e.code, e.message))

    def test_architecture_options(self):
        with nvpflow.Chain.alternating(4, layers=3, hidden=(), seed=1) as a:
            # affine conditioner: |a| = 2 -> 2|b| = 4 per layer
            self.assertEqual(a.num_params, 3 * (2 * 4 + 4))
        with nvpflow.Chain.alternating(2, layers=2, hidden=(8,), seed=1,
                                       zero_init=True) as z:
            x = [[0.5, -1.5], [2.0, 3.0]]
            y, ld = z.forward(x)
            self.assertEqual(to_list(y), x)  # identity at initialisation
            self.assertEqual(to_list(ld), [0.0, 0.0])
        with nvpflow.Rng(3) as r1, nvpflow.Rng(3) as r2:
            a = nvpflow.Chain.alternating(2, layers=2, hidden=(8,), rng=r1)
            b = nvpflow.Chain.alternating(2, layers=2, hidden=(8,), seed=3)
            self.assertEqual(raw(a.params), raw(b.params))
            a.close()
            b.close()
            self.assertEqual(raw(r1.normal(3)) != raw(r2.normal(3)), True)

    def test_adam_state_resume_is_exact(self):
        data, _ = moons(256, seed=2)
        with small_chain(seed=15) as flow, \
                nvpflow.Adam(flow, lr=2e-3, betas=(0.8, 0.99)) as opt, \
                nvpflow.Rng(4) as rng:
            for _ in range(5):
                flow.train_step(opt, rng, data, 32)
            model = flow.to_bytes()
            state = opt.to_bytes(rng)
            cont = [flow.train_step(opt, rng, data, 32) for _ in range(5)]
            final = raw(flow.params)
        c2, _ = nvpflow.Chain.from_bytes(model)
        o2, r2 = nvpflow.Adam.from_bytes(state)
        with c2, o2, r2:
            self.assertEqual(o2.steps, 5)
            self.assertAlmostEqual(o2.lr, 2e-3, places=9)
            c2.set_threads(1)
            again = [c2.train_step(o2, r2, data, 32) for _ in range(5)]
            self.assertEqual(again, cont)
            self.assertEqual(raw(c2.params), final)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "state.bin")
            with nvpflow.Adam(10) as o3:
                o3.save(path)
                o4, r4 = nvpflow.Adam.load(path)
                self.assertIsNone(r4)
                self.assertEqual(o4.num_params, 10)
                o4.close()
        with self.assertRaises(nvpflow.FormatError):
            nvpflow.Adam.from_bytes(state[:-5])

    def test_adam_parameter_average(self):
        data, _ = moons(256, seed=2)
        with small_chain(seed=16) as flow, \
                nvpflow.Adam(flow, lr=2e-3) as opt, nvpflow.Rng(5) as rng:
            self.assertEqual(opt.average_decay, 0.0)
            with self.assertRaises(nvpflow.InvalidArgument):
                opt.average()
            opt.set_average(0.5, flow)
            self.assertEqual(opt.average_decay, 0.5)
            hand = [float(v) for v in flow.params]
            for _ in range(3):
                flow.train_step(opt, rng, data, 32)
                # The formula with d = 0.5: halving is exact, and the
                # double sum rounded to float32 is the float32 sum.
                hand = list(array.array("f", [
                    0.5 * a + 0.5 * float(p)
                    for a, p in zip(hand, flow.params)]))
            self.assertEqual(raw(opt.average()),
                             raw(array.array("f", hand)))
            state = opt.to_bytes(rng)
            o2, r2 = nvpflow.Adam.from_bytes(state)
            with o2, r2:
                self.assertEqual(o2.average_decay, 0.5)
                self.assertEqual(raw(o2.average()), raw(opt.average()))
            with self.assertRaises(nvpflow.DimensionError):
                opt.set_average(0.9, [0.0] * 3)
            with self.assertRaises(nvpflow.InvalidArgument):
                opt.set_average(1.5, flow)
            with self.assertRaises(nvpflow.InvalidArgument):
                opt.set_average(float("nan"))
            opt.set_average(0)
            self.assertEqual(opt.average_decay, 0.0)

    def test_adam_clip_norm(self):
        with nvpflow.Adam(4, lr=0.1, clip_norm=1.0) as opt, \
                nvpflow.Adam(4, lr=0.1) as ctl:
            self.assertEqual(opt.clip_norm, 1.0)
            self.assertEqual(ctl.clip_norm, 0.0)
            p = array.array("f", [0.0] * 4)
            q = array.array("f", [0.0] * 4)
            # Norm 5 over the limit 1: the same step as the gradient / 5.
            opt.step(p, [3.0, 4.0, 0.0, 0.0])
            ctl.step(q, [0.6, 0.8, 0.0, 0.0])
            self.assertEqual(opt.last_grad_norm, 5.0)
            self.assertEqual(raw(p), raw(q))
            with self.assertRaises(nvpflow.InvalidArgument):
                opt.clip_norm = -1
            with self.assertRaises(nvpflow.InvalidArgument):
                opt.clip_norm = float("inf")
            self.assertEqual(opt.clip_norm, 1.0)
            o2, r2 = nvpflow.Adam.from_bytes(opt.to_bytes())
            with o2:
                self.assertIsNone(r2)
                self.assertEqual(o2.clip_norm, 1.0)
            opt.clip_norm = 0
            self.assertEqual(opt.clip_norm, 0.0)

    def test_result_types(self):
        with small_chain(seed=0) as flow:
            if _arrays.np is None:
                self.assertIsInstance(flow.params, array.array)
                self.assertEqual(flow.params.typecode, "f")
                self.assertIsInstance(flow.sample(2, 0), list)
                self.assertIsInstance(flow.sample(2, 0)[0], list)
                self.assertIsInstance(flow.log_prob([[0.0, 0.0]]), list)
                self.assertIsInstance(flow.forward([[0.0, 0.0]])[1], list)
            else:
                for r in (flow.params, flow.sample(2, 0),
                          flow.log_prob([[0.0, 0.0]])):
                    self.assertIsInstance(r, np.ndarray)
                    self.assertEqual(r.dtype, np.float32)

    def test_concurrent_log_prob(self):
        x, _ = moons(300)
        with small_chain(seed=16) as flow:
            flow.set_threads(2)
            want = raw(flow.log_prob(x))
            got = []

            def work():
                for _ in range(5):
                    got.append(raw(flow.log_prob(x)))
            ts = [threading.Thread(target=work) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(len(got), 20)
            self.assertTrue(all(g == want for g in got))


@unittest.skipUnless(HAVE_NUMPY, "numpy is absent: CoreTests already "
                     "exercise the list path")
class PureListTests(CoreTests):
    """CoreTests again with the package's numpy support switched off."""
    pure = True


@unittest.skipUnless(HAVE_NUMPY, "numpy is not installed")
class NumpyTests(Base):
    def test_zero_copy_input(self):
        a = np.zeros((5, 2), dtype=np.float32)
        n, ptr, keep = _arrays.rows_in(a, 2, "x")
        self.assertEqual(n, 5)
        self.assertIs(keep, a)
        self.assertEqual(ctypes_addr(ptr), a.ctypes.data)
        # float64 / Fortran order / strided: converted, not rejected
        for b in (a.astype(np.float64), np.asfortranarray(a),
                  np.zeros((5, 4), dtype=np.float32)[:, ::2]):
            n, ptr, keep = _arrays.rows_in(b, 2, "x")
            self.assertEqual(n, 5)
            self.assertTrue(keep.flags.c_contiguous)
            self.assertEqual(keep.dtype, np.float32)

    def test_results_are_float32_arrays(self):
        x, labels = moons(64)
        self.assertEqual((x.shape, x.dtype), ((64, 2), np.float32))
        self.assertEqual(labels.shape, (64,))
        with small_chain(seed=1) as flow:
            y, ld = flow.forward(x)
            self.assertEqual((y.shape, y.dtype), ((64, 2), np.float32))
            self.assertEqual(ld.shape, (64,))
            self.assertEqual(flow.log_prob(x.astype(np.float64)).dtype,
                             np.float32)
            self.assertEqual(flow.forward_trace(x).shape, (5, 64, 2))
            self.assertEqual(flow.params.shape, (flow.num_params,))
            loss, g = flow.nll_grad(x)
            self.assertEqual(g.dtype, np.float32)
            np.testing.assert_allclose(flow.inverse(y)[0], x, atol=1e-4)
            # same answers as the list path
            self.assertEqual(flow.log_prob(x).tolist(),
                             flow.log_prob(x.tolist()).tolist())

    def test_numpy_shape_errors(self):
        with small_chain(seed=2) as flow:
            for bad in (np.zeros(2, np.float32), np.zeros((3, 3)),
                        np.zeros((2, 2, 2), np.float32)):
                with self.assertRaises(nvpflow.DimensionError):
                    flow.log_prob(bad)
            with self.assertRaises(nvpflow.DimensionError):
                flow.set_params(np.zeros((2, flow.num_params // 2)))
            p = flow.params
            with self.assertRaises(TypeError):  # not float32: no in-place
                nvpflow.Adam(flow).step(p.astype(np.float64), p)

    def test_adam_step_in_place_numpy(self):
        with small_chain(seed=3) as flow, nvpflow.Adam(flow) as opt:
            x, _ = moons(64)
            p = flow.params
            _, g = flow.nll_grad(x)
            before = p.copy()
            opt.step(p, g)
            self.assertFalse(np.array_equal(p, before))
            flow.params = p
            np.testing.assert_array_equal(flow.params, p)


def ctypes_addr(ptr):
    import ctypes
    return ctypes.cast(ptr, ctypes.c_void_p).value


class LoaderTests(unittest.TestCase):
    def _run(self, env_value):
        env = dict(os.environ)
        env["NVPFLOW_LIBRARY"] = env_value
        return subprocess.run(
            [sys.executable, "-c",
             "import nvpflow; print(nvpflow.library_path)"],
            cwd=PKG_PARENT, env=env, capture_output=True, text=True,
            timeout=60)

    def test_env_var_missing_file(self):
        r = self._run("/nonexistent/libnvpflow.so")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("NVPFLOW_LIBRARY", r.stderr)

    def test_env_var_points_at_library(self):
        r = self._run(nvpflow.library_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), nvpflow.library_path)


if __name__ == "__main__":
    unittest.main()
