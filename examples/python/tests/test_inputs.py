# SPDX-License-Identifier: MIT
"""Bad inputs are refused the same way with or without numpy (issue 16,
items 9 and 10): paths with an embedded NUL, values that are not real
numbers (None, strings, complex numbers, dates), finite values beyond the
float32 range, and seeds that are not whole numbers."""
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import nvpflow  # noqa: E402
from nvpflow import _arrays  # noqa: E402


class PathTests(unittest.TestCase):
    def test_nul_in_path_refused(self):
        with tempfile.TemporaryDirectory() as d, \
                nvpflow.Chain.alternating(2, seed=1) as c, \
                nvpflow.Adam(c) as opt:
            bad = os.path.join(d, "a\0b")
            for call in (lambda: c.save(bad), lambda: nvpflow.Chain.load(bad),
                         lambda: opt.save(bad), lambda: nvpflow.Adam.load(bad)):
                with self.assertRaises(ValueError):
                    call()
            self.assertEqual(os.listdir(d), [], "a file was written")


class ValueTests(unittest.TestCase):
    pure = False

    def setUp(self):
        self._saved = _arrays.np
        if self.pure:
            _arrays.np = None

    def tearDown(self):
        _arrays.np = self._saved

    def test_not_real_numbers(self):
        with nvpflow.Chain.alternating(2, seed=2) as c:
            for bad in ([[None, 1.0]], [["1.5", "2"]], [[1 + 2j, 0.0]],
                        [[1.0, object()]]):
                with self.assertRaises(TypeError, msg=repr(bad)):
                    c.log_prob(bad)
            with self.assertRaises(ValueError):
                c.log_prob([[1e300, 0.0]])
            # NaN and infinities are numbers: the library decides (NaN out)
            lp = list(c.log_prob([[float("nan"), 0.0], [0.1, 0.2]]))
            self.assertNotEqual(lp[0], lp[0])
            self.assertEqual(lp[1], lp[1])

    def test_seed_must_be_whole(self):
        for bad in (1.9, "3", None, True):
            with self.assertRaises(TypeError, msg=repr(bad)):
                nvpflow.Rng(bad)
        with nvpflow.Rng(3) as r:
            self.assertIsNotNone(r)


class WeightDecayTests(unittest.TestCase):
    def test_weight_decay(self):
        with nvpflow.Adam(3) as opt:
            self.assertEqual(opt.weight_decay, 0.0)
            opt.weight_decay = 0.25
            self.assertEqual(opt.weight_decay, 0.25)
            with self.assertRaises(nvpflow.InvalidArgument):
                opt.weight_decay = -1.0
            self.assertEqual(opt.weight_decay, 0.25)
            data = opt.to_bytes()
            back, _ = nvpflow.Adam.from_bytes(data)
            with back:
                self.assertEqual(back.weight_decay, 0.25)


class LayerKernelTests(unittest.TestCase):
    def test_layer_kernels(self):
        with nvpflow.Linear(3) as lin:
            lin.set_kernels("portable")
            self.assertEqual(lin.kernels, nvpflow.KERNELS_PORTABLE)
            with self.assertRaises(nvpflow.NvpError):
                lin.set_kernels(99)
            self.assertEqual(lin.kernels, nvpflow.KERNELS_PORTABLE)


class PureValueTests(ValueTests):
    pure = True


@unittest.skipUnless(nvpflow.have_numpy(), "numpy is not installed")
class NumpyValueTests(unittest.TestCase):
    def test_numpy_arrays(self):
        import numpy as np
        with nvpflow.Chain.alternating(2, seed=3) as c:
            for bad in (np.array([[None, 1.0]], dtype=object),
                        np.array([["1.5", "2"]]),
                        np.array([[1 + 2j, 0]]),
                        np.array([["2020-01-01", "2020-01-02"]],
                                 dtype="datetime64[D]")):
                with self.assertRaises(TypeError, msg=repr(bad)):
                    c.log_prob(bad)
            with self.assertRaises(ValueError):
                c.log_prob(np.array([[1e300, 0.0]]))
            ok = c.log_prob(np.array([[0.1, 0.2]], dtype=np.float64))
            self.assertEqual(len(ok), 1)


if __name__ == "__main__":
    unittest.main()
