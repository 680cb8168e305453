# SPDX-License-Identifier: MIT
"""Tests of nvpflow.pytorch, the PyTorch state-dict converter.

Run from the repository root (after `make`):
    python3 -m unittest discover -s examples/python/tests -v

Without torch, the converter is still tested on state dicts of nested lists
against an independent double-precision implementation of the PyTorch
layout (below); the tests that need torch (the reference model
tests/bench/torch_model.py, tensors, load_state_dict) say they skipped.
Debian: apt-get install python3-torch.
"""
import array
import math
import os
import random
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(HERE)  # examples/python
if PKG_PARENT not in sys.path:
    sys.path.insert(0, PKG_PARENT)
TORCH_MODEL = os.path.normpath(os.path.join(HERE, "..", "..", "..", "tests",
                                            "bench", "torch_model.py"))

import nvpflow  # noqa: E402
import nvpflow.pytorch as conv  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

LOG2PI = math.log(2 * math.pi)


def f32(values):
    """Values rounded to float32 (what the library stores)."""
    return array.array("f", values).tolist()


def random_state(masks, hidden, seed, paths=None, scale=0.6):
    """A nested-list state dict in the PyTorch layout: layer k's Linear
    layers |a_k| -> hidden[k]... -> 2|b_k|, values float32."""
    rnd = random.Random(seed)
    state = {}
    for k, (mask, widths) in enumerate(zip(masks, hidden)):
        fan_in = sum(mask)
        outs = list(widths) + [2 * (len(mask) - fan_in)]
        for j, fan_out in enumerate(outs):
            path = paths[j] if paths else "net.%d" % (2 * j)
            bound = scale / math.sqrt(fan_in)
            state["%d.%s.weight" % (k, path)] = [
                f32([rnd.uniform(-bound, bound) for _ in range(fan_in)])
                for _ in range(fan_out)]
            state["%d.%s.bias" % (k, path)] = f32(
                [rnd.uniform(-bound, bound) for _ in range(fan_out)])
            fan_in = fan_out
    return state


def reference_log_prob(state, masks, points, prefix=""):
    """log p(y) in double for the PyTorch layout, written from the
    definition: invert the last layer first, base N(0, I)."""
    layers = []
    for k in range(len(masks)):
        lin = sorted({key[len(prefix):].split(".", 1)[1].rsplit(".", 1)[0]
                      for key in state
                      if key[len(prefix):].split(".", 1)[0] == str(k)},
                     key=lambda p: [int(s) if s.isdigit() else s
                                    for s in p.split(".")])
        layers.append([(state["%s%d.%s.weight" % (prefix, k, p)],
                        state["%s%d.%s.bias" % (prefix, k, p)])
                       for p in lin])
    out = []
    for y in points:
        x = [float(v) for v in y]
        total = 0.0
        for mask, dense in reversed(list(zip(masks, layers))):
            a = [x[i] for i in range(len(x)) if mask[i]]
            bidx = [i for i in range(len(x)) if not mask[i]]
            h = a
            for j, (w, b) in enumerate(dense):
                h = [sum(wi * hi for wi, hi in zip(row, h)) + bo
                     for row, bo in zip(w, b)]
                if j < len(dense) - 1:
                    h = [max(v, 0.0) for v in h]
            shift, log_scale = h[:len(bidx)], h[len(bidx):]
            for t, i in enumerate(bidx):
                x[i] = (x[i] - shift[t]) * math.exp(-log_scale[t])
            total -= sum(log_scale)
        out.append(sum(-0.5 * v * v - 0.5 * LOG2PI for v in x) + total)
    return out


def points(n, dim, seed, scale=1.5):
    rnd = random.Random(seed)
    return [[rnd.gauss(0.0, scale) for _ in range(dim)] for _ in range(n)]


def as_list(values):
    return values.tolist() if hasattr(values, "tolist") else list(values)


class ConverterTests(unittest.TestCase):
    """State dicts of nested lists: no torch needed."""

    def assert_close_lp(self, got, want, tol=2e-4):
        got = as_list(got)
        self.assertEqual(len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertLessEqual(abs(g - w), tol * max(1.0, abs(w)),
                                 "point %d: library %r, reference %r"
                                 % (i, g, w))

    def test_default_masks_match_reference(self):
        masks = conv.alternating_masks(2, 4)
        self.assertEqual(masks, [[1, 0], [0, 1], [1, 0], [0, 1]])
        state = random_state(masks, [(16, 16)] * 4, seed=1)
        ys = points(64, 2, seed=2)
        with conv.from_state_dict(state) as flow:
            self.assertEqual((flow.dim, flow.num_layers), (2, 4))
            self.assertEqual(conv.layer_masks(flow), masks)
            self.assert_close_lp(flow.log_prob(ys),
                                 reference_log_prob(state, masks, ys))

    def test_custom_masks_and_widths_match_reference(self):
        masks = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]
        hidden = [(5, 4), (7,), (), (3, 6, 2)]
        state = random_state(masks, hidden, seed=3)
        ys = points(40, 3, seed=4)
        with conv.from_state_dict(state, masks=masks) as flow:
            self.assertEqual(conv.layer_masks(flow), masks)
            self.assert_close_lp(flow.log_prob(ys),
                                 reference_log_prob(state, masks, ys))
            back = conv.to_state_dict(flow, tensors=False, check_masks=False)
        self.assertEqual(sorted(back), sorted(state))
        for key in state:
            self.assertEqual(back[key], state[key], key)

    def test_exact_round_trip_from_library(self):
        # odd dimension, and an affine conditioner (no hidden layer)
        for dim, hidden in ((3, (8, 8)), (2, ()), (5, (4,))):
            with nvpflow.Chain.alternating(dim, layers=3, hidden=hidden,
                                           seed=5) as flow:
                state = conv.to_state_dict(flow, tensors=False)
                with conv.from_state_dict(state) as again:
                    self.assertEqual(as_list(again.params),
                                     as_list(flow.params), (dim, hidden))
                    ys = points(16, dim, seed=6)
                    self.assertEqual(as_list(again.log_prob(ys)),
                                     as_list(flow.log_prob(ys)))
                self.assert_close_lp(
                    flow.log_prob(ys),
                    reference_log_prob(state, conv.alternating_masks(dim, 3),
                                       ys))

    def test_key_order_prefix_and_natural_paths(self):
        # six Linear layers: net.0 ... net.10 must come in numeric order
        masks = conv.alternating_masks(2, 2)
        paths = ["net.%d" % (2 * j) for j in range(6)]
        state = random_state(masks, [(3, 4, 5, 6, 7)] * 2, seed=7,
                             paths=paths)
        keys = list(state)
        random.Random(8).shuffle(keys)
        shuffled = {"layers." + k: state[k] for k in keys}
        ys = points(16, 2, seed=9)
        with conv.from_state_dict(shuffled, prefix="layers.") as flow:
            self.assert_close_lp(flow.log_prob(ys),
                                 reference_log_prob(state, masks, ys))
            back = conv.to_state_dict(flow, prefix="layers.", tensors=False)
        self.assertEqual(back, shuffled)
        self.assertEqual(list(back)[:4], ["layers.0.net.0.weight",
                                          "layers.0.net.0.bias",
                                          "layers.0.net.2.weight",
                                          "layers.0.net.2.bias"])

    def test_rejects_what_does_not_fit(self):
        masks = conv.alternating_masks(2, 2)
        good = random_state(masks, [(4,)] * 2, seed=10)

        def variant(**changes):
            s = dict(good)
            for k, v in changes.items():
                k = k.replace("__", ".")
                if v is None:
                    del s[k]
                else:
                    s[k] = v
            return s

        cases = [
            ({"extra": [1.0]}, {}, "unexpected state-dict entry 'extra'"),
            ({"0.norm.running_mean": [0.0]}, {}, "0.norm.running_mean"),
            (variant(**{"1__net__2__bias": None}), {}, "1.net.2.bias is missing"),
            ({k.replace("1.", "2.", 1) if k.startswith("1.") else k: v
              for k, v in good.items()}, {}, "layers [1] are missing"),
            (variant(**{"0__net__0__weight": [[0.1, 0.2]] * 4}), {},
             "0.net.0.weight: 2 inputs, expected 1"),
            (variant(**{"1__net__2__weight": [[0.1] * 4] * 3,
                        "1__net__2__bias": [0.0] * 3}), {},
             "1.net.2.weight: 3 outputs, expected 2"),
            (variant(**{"0__net__2__bias": [0.0] * 3}), {},
             "0.net.2.bias has 3 values"),
            (good, {"masks": masks[:1]}, "1 masks for 2 layers"),
            (good, {"masks": [[1, 1], [0, 1]]}, "masks[0]"),
            (good, {"masks": [[1, 2], [0, 1]]}, "masks[0]"),
            (good, {"prefix": "flow."}, "not under prefix 'flow.'"),
            ({}, {}, "no layers"),
            (variant(**{"0__net__0__weight": [0.1, 0.2]}), {},
             "0.net.0.weight: expected"),
        ]
        for state, kwargs, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(ValueError) as cm:
                    conv.from_state_dict(state, **kwargs)
                self.assertIn(message, str(cm.exception))

    def test_non_finite_parameters(self):
        masks = conv.alternating_masks(2, 2)
        state = random_state(masks, [(4,)] * 2, seed=11)
        for bad in (float("nan"), float("inf")):
            s = dict(state)
            s["1.net.0.bias"] = [0.0, bad, 0.0, 0.0]
            with self.assertRaises(nvpflow.NonFinite):
                conv.from_state_dict(s)

    def test_to_state_dict_refusals(self):
        masks = [[0, 1], [0, 1]]
        state = random_state(masks, [(4,)] * 2, seed=12)
        with conv.from_state_dict(state, masks=masks) as flow:
            with self.assertRaises(ValueError) as cm:
                conv.to_state_dict(flow, tensors=False)
            self.assertIn("layer 0's mask is [0, 1]", str(cm.exception))
            self.assertEqual(conv.to_state_dict(flow, tensors=False,
                                                check_masks=False), state)
        with nvpflow.Chain.alternating(2, layers=2, hidden=(4,),
                                       seed=13) as flow:
            flow.set_log_scale_clamp(3.0)
            with self.assertRaises(ValueError) as cm:
                conv.to_state_dict(flow, tensors=False)
            self.assertIn("log-scale clamp", str(cm.exception))

    @unittest.skipIf(torch is None, "torch is not installed: importing the "
                     "converter cannot be told apart from not importing "
                     "torch (Debian: python3-torch)")
    def test_module_import_does_not_import_torch(self):
        code = ("import sys, nvpflow, nvpflow.pytorch as c; "
                "s = c.to_state_dict(nvpflow.Chain.alternating(2, 2, (4,), "
                "seed=1), tensors=False); "
                "c.from_state_dict(s); "
                "print('torch' in sys.modules)")
        r = subprocess.run([sys.executable, "-c", code], cwd=PKG_PARENT,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "False")


def load_torch_model():
    import importlib.util
    spec = importlib.util.spec_from_file_location("nvp_torch_model",
                                                  TORCH_MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@unittest.skipIf(torch is None, "torch is not installed (Debian: "
                 "python3-torch): PyTorch round trip not run")
@unittest.skipIf(not os.path.isfile(TORCH_MODEL),
                 "tests/bench/torch_model.py not found (run from the source "
                 "tree)")
class TorchRoundTripTests(unittest.TestCase):
    """Against the reference PyTorch model, tests/bench/torch_model.py."""

    @classmethod
    def setUpClass(cls):
        cls.tm = load_torch_model()
        torch.set_num_threads(1)

    def make_layers(self, n, dim, width, seed):
        torch.manual_seed(seed)
        return torch.nn.ModuleList([self.tm.Coupling(k % 2 == 1, D=dim,
                                                     H=width)
                                    for k in range(n)])

    def compare(self, layers, flow, dim, seed, y=None, tol=1e-4):
        """Largest relative difference of the log densities of points y
        (default: 300 draws from N(0, 1.5^2 I)); also checks the sampling
        direction on base draws."""
        gen = torch.Generator().manual_seed(seed)
        if y is None:
            y = torch.randn(300, dim, generator=gen) * 1.5
        with torch.no_grad():
            want = self.tm.log_prob(layers, y).double()
            got = torch.tensor(as_list(flow.log_prob(y.tolist())),
                               dtype=torch.float64)
            self.assertTrue(bool(torch.isfinite(want).all()),
                            "PyTorch gives non-finite log densities")
            self.assertTrue(bool(torch.isfinite(got).all()),
                            "the library gives non-finite log densities")
            err = ((got - want).abs() / want.abs().clamp(min=1.0)).max()
            self.assertLess(float(err), tol, "log densities differ by %g"
                            % float(err))
            # sampling direction: the same base points through both
            x = torch.randn(300, dim, generator=gen)
            x_t = x
            for layer in layers:
                x_t = layer(x_t)
            fwd, _ = flow.forward(x.tolist())
            fwd = torch.tensor(as_list(fwd), dtype=torch.float32)
            self.assertLess(float((fwd - x_t).abs().max()),
                            tol * max(1.0, float(x_t.abs().max())))
        return float(err)

    def test_torch_to_library(self):
        for n, dim, width in ((4, 2, 512), (6, 4, 16)):
            layers = self.make_layers(n, dim, width, seed=dim)
            with conv.from_state_dict(layers) as flow:
                self.assertEqual((flow.dim, flow.num_layers), (dim, n))
                err = self.compare(layers, flow, dim, seed=1)
            print("  torch -> nvpflow, %d layers over %d dims, width %d: "
                  "largest relative log-density difference %.2g"
                  % (n, dim, width, err), file=sys.stderr)

    def test_library_to_torch(self):
        # A model trained by the library, loaded into PyTorch.
        xy, _ = nvpflow.two_moons(512, 0.05, seed=0)
        with nvpflow.Scaler(2) as sc, \
                nvpflow.Chain.alternating(2, layers=4, hidden=(32, 32),
                                          seed=1) as flow, \
                nvpflow.Adam(flow, lr=1e-3) as opt, nvpflow.Rng(2) as rng:
            data = sc.fit_transform(xy)
            for _ in range(200):
                flow.train_step(opt, rng, data, 64)
            sd = conv.to_state_dict(flow)
            self.assertTrue(all(isinstance(v, torch.Tensor)
                                and v.dtype == torch.float32
                                for v in sd.values()))
            layers = self.make_layers(4, 2, 32, seed=99)
            layers.load_state_dict(sd)          # strict: same keys, shapes
            # where the model has its mass: the data and its own draws
            y = torch.cat([torch.tensor(as_list(data)),
                           torch.tensor(as_list(flow.sample(300, rng)))])
            err = self.compare(layers, flow, 2, seed=3, y=y)
            # and back, bitwise
            with conv.from_state_dict(layers.state_dict()) as again:
                self.assertEqual(as_list(again.params), as_list(flow.params))
        print("  nvpflow -> torch after 200 training steps: largest "
              "relative log-density difference %.2g" % err, file=sys.stderr)

    def test_module_with_prefix(self):
        tm = self.tm

        class Flow(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = tm.make_layers(2)

        torch.manual_seed(5)
        model = Flow()
        with self.assertRaises(ValueError):
            conv.from_state_dict(model)           # keys start "layers."
        with conv.from_state_dict(model, prefix="layers.") as flow:
            self.compare(model.layers, flow, 2, seed=4)
            sd = conv.to_state_dict(flow, prefix="layers.")
        fresh = Flow()
        fresh.load_state_dict(sd)
        for key, value in model.state_dict().items():
            self.assertTrue(torch.equal(value, fresh.state_dict()[key]), key)


if __name__ == "__main__":
    unittest.main()
