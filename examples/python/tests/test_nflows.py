# SPDX-License-Identifier: MIT
"""Tests of nvpflow.nflows, the nflows state-dict converter.

Run from the repository root (after `make`):
    python3 -m unittest discover -s examples/python/tests -v

The converter is tested on state dicts of nested lists against an
independent double-precision implementation of nflows' transforms (below,
written from nflows' definitions: AffineCouplingTransform with
scale = sigmoid(h + 2) + 1e-3, Permutation, ActNorm, StandardNormal).
With torch, the state dict the converter writes is also loaded (strictly)
into torch modules laid out as nflows lays them out and evaluated there;
with nflows itself installed, into a real nflows Flow.
"""
import math
import os
import random
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(HERE)  # examples/python
if PKG_PARENT not in sys.path:
    sys.path.insert(0, PKG_PARENT)

import nvpflow  # noqa: E402
import nvpflow.nflows as nfc  # noqa: E402
from nvpflow.layers import KIND_ACTNORM, KIND_COUPLING, KIND_PERMUTATION  # noqa: E402,E501

try:
    import torch
except ImportError:
    torch = None
try:
    import nflows  # noqa: F401
except ImportError:
    nflows = None

P = nfc.PREFIX
DIM = 5


def f32(values):
    import array
    return array.array("f", values).tolist()


def random_flow_state(seed):
    """An nflows-layout state dict (nested lists) of six transforms:
    ActNorm, coupling, reverse permutation, coupling, random permutation,
    coupling, with MLP transform nets of various widths."""
    rnd = random.Random(seed)
    state = {}
    masks = [[1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [1, 1, 0, 0, 1]]
    widths = [(16, 16), (8,), ()]
    kinds = ["actnorm", "coupling", "reverse", "coupling", "random",
             "coupling"]
    c = 0
    for k, kind in enumerate(kinds):
        pre = "%s%d." % (P, k)
        if kind == "actnorm":
            state[pre + "initialized"] = True
            state[pre + "log_scale"] = f32([rnd.uniform(-0.5, 0.5)
                                            for _ in range(DIM)])
            state[pre + "shift"] = f32([rnd.uniform(-1, 1)
                                        for _ in range(DIM)])
        elif kind == "reverse":
            state[pre + "_permutation"] = list(range(DIM - 1, -1, -1))
        elif kind == "random":
            p = list(range(DIM))
            rnd.shuffle(p)
            state[pre + "_permutation"] = p
        else:
            mask = masks[c]   # nflows' mask: > 0 is transformed
            hidden = widths[c]
            c += 1
            ident = [i for i in range(DIM) if mask[i] <= 0]
            trans = [i for i in range(DIM) if mask[i] > 0]
            state[pre + "identity_features"] = ident
            state[pre + "transform_features"] = trans
            fan_in = len(ident)
            for j, fan_out in enumerate(list(hidden) + [2 * len(trans)]):
                bound = 0.8 / math.sqrt(fan_in)
                state[pre + "transform_net.%d.weight" % (2 * j)] = [
                    f32([rnd.uniform(-bound, bound) for _ in range(fan_in)])
                    for _ in range(fan_out)]
                state[pre + "transform_net.%d.bias" % (2 * j)] = f32(
                    [rnd.uniform(-bound, bound) for _ in range(fan_out)])
                fan_in = fan_out
    return state, len(kinds)


def reference_log_prob(state, n_transforms, ys):
    """log p(y) of the nflows Flow, in double: transform 0 first on the
    data (nflows' forward direction, data to noise), then N(0, I)."""
    out = []
    for y in ys:
        z = [float(v) for v in y]
        total = 0.0
        for k in range(n_transforms):
            pre = "%s%d." % (P, k)
            if pre + "_permutation" in state:
                p = state[pre + "_permutation"]
                z = [z[p[i]] for i in range(DIM)]
            elif pre + "log_scale" in state:
                ls, sh = state[pre + "log_scale"], state[pre + "shift"]
                z = [math.exp(a) * v + b for v, a, b in zip(z, ls, sh)]
                total += sum(ls)
            else:
                ident = state[pre + "identity_features"]
                trans = state[pre + "transform_features"]
                h = [z[i] for i in ident]
                j = 0
                while pre + "transform_net.%d.weight" % (2 * j) in state:
                    w = state[pre + "transform_net.%d.weight" % (2 * j)]
                    b = state[pre + "transform_net.%d.bias" % (2 * j)]
                    h = [sum(wi * hi for wi, hi in zip(row, h)) + bo
                         for row, bo in zip(w, b)]
                    j += 1
                    if pre + "transform_net.%d.weight" % (2 * j) in state:
                        h = [max(v, 0.0) for v in h]
                nt = len(trans)
                shift, raw = h[:nt], h[nt:]
                for t, i in enumerate(trans):
                    s = 1.0 / (1.0 + math.exp(-(raw[t] + 2.0))) + 1e-3
                    z[i] = z[i] * s + shift[t]
                    total += math.log(s)
        out.append(sum(-0.5 * v * v - 0.5 * math.log(2 * math.pi)
                       for v in z) + total)
    return out


def points(n, seed, scale=1.5):
    rnd = random.Random(seed)
    return [[rnd.gauss(0.0, scale) for _ in range(DIM)] for _ in range(n)]


def as_list(values):
    return values.tolist() if hasattr(values, "tolist") else list(values)


class NflowsConverterTests(unittest.TestCase):

    def assert_close(self, got, want, tol=2e-4):
        got = as_list(got)
        self.assertEqual(len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertLessEqual(abs(g - w), tol * max(1.0, abs(w)),
                                 "point %d: library %r, reference %r"
                                 % (i, g, w))

    def test_log_prob_matches_the_nflows_definition(self):
        for seed in (1, 2, 3):
            state, n = random_flow_state(seed)
            ys = points(50, seed + 10)
            with nfc.from_state_dict(state) as flow:
                self.assertEqual(flow.dim, DIM)
                # nflows' transform 0 (ActNorm) is the library's last layer
                self.assertEqual(flow.layer_kinds,
                                 [KIND_COUPLING, KIND_PERMUTATION,
                                  KIND_COUPLING, KIND_PERMUTATION,
                                  KIND_COUPLING, KIND_ACTNORM])
                self.assertEqual(flow.layer(0).affine_form,
                                 nvpflow.AFFINE_SIGMOID)
                self.assert_close(flow.log_prob(ys),
                                  reference_log_prob(state, n, ys))

    def test_round_trip(self):
        state, n = random_flow_state(4)
        with nfc.from_state_dict(state) as flow:
            back = nfc.to_state_dict(flow, tensors=False)
        self.assertEqual(sorted(back), sorted(state))
        for key, want in state.items():
            got = back[key]
            if isinstance(want, bool):
                self.assertEqual(got, want, key)
                continue
            flat_w = [v for r in want for v in r] \
                if want and isinstance(want[0], list) else list(want)
            flat_g = [v for r in got for v in r] \
                if got and isinstance(got[0], list) else list(got)
            self.assertEqual(len(flat_g), len(flat_w), key)
            for g, w in zip(flat_g, flat_w):
                # ActNorm's shift goes through exp and back
                self.assertLessEqual(abs(g - w), 1e-6 * max(1.0, abs(w)),
                                     key)
        ys = points(20, 5)
        with nfc.from_state_dict(back) as again:
            self.assert_close(again.log_prob(ys),
                              reference_log_prob(state, n, ys))

    def test_refusals(self):
        state, _ = random_flow_state(6)
        residual = dict(state)
        residual[P + "1.transform_net.initial_layer.weight"] = [[0.0]]
        with self.assertRaisesRegex(ValueError, "ResidualNet"):
            nfc.from_state_dict(residual)
        batchnorm = dict(state)
        batchnorm[P + "6.running_mean"] = [0.0] * DIM
        with self.assertRaisesRegex(ValueError, "not an affine coupling"):
            nfc.from_state_dict(batchnorm)
        bad_perm = dict(state)
        bad_perm[P + "2._permutation"] = [0, 0, 1, 2, 3]
        with self.assertRaisesRegex(ValueError, "not a permutation"):
            nfc.from_state_dict(bad_perm)
        unsorted = dict(state)
        unsorted[P + "1.identity_features"] = list(
            reversed(state[P + "1.identity_features"]))
        with self.assertRaisesRegex(ValueError, "increasing order"):
            nfc.from_state_dict(unsorted)
        nan = dict(state)
        nan[P + "0.shift"] = [float("nan")] * DIM
        with self.assertRaises(nvpflow.NonFinite):
            nfc.from_state_dict(nan)
        with self.assertRaisesRegex(ValueError, "no transform"):
            nfc.from_state_dict({"other.weight": [1.0]})
        # an exp-form coupling has no nflows counterpart
        with nvpflow.Chain.alternating(DIM, 2, hidden=(4,), seed=1) as flow:
            with self.assertRaisesRegex(ValueError, "exp-form"):
                nfc.to_state_dict(flow, tensors=False)

    @unittest.skipIf(torch is None, "needs torch (Debian: python3-torch)")
    def test_torch_modules_in_the_nflows_layout(self):
        """The written state dict loads strictly into torch modules laid
        out as nflows lays them out, and they compute the same density."""
        import torch.nn as nn
        import torch.nn.functional as F

        class Coupling(nn.Module):
            def __init__(self, ident, trans, widths):
                super().__init__()
                self.register_buffer("identity_features",
                                     torch.tensor(ident))
                self.register_buffer("transform_features",
                                     torch.tensor(trans))
                sizes = [len(ident)] + list(widths) + [2 * len(trans)]
                mods = []
                for a, b in zip(sizes[:-1], sizes[1:]):
                    mods += [nn.Linear(a, b), nn.ReLU()]
                self.transform_net = nn.Sequential(*mods[:-1])

            def forward(self, x):
                h = self.transform_net(x[:, self.identity_features])
                nt = len(self.transform_features)
                s = torch.sigmoid(h[:, nt:] + 2) + 1e-3
                out = x.clone()
                out[:, self.transform_features] = \
                    x[:, self.transform_features] * s + h[:, :nt]
                return out, torch.log(s).sum(1)

        class Perm(nn.Module):
            def __init__(self, p):
                super().__init__()
                self.register_buffer("_permutation", torch.tensor(p))

            def forward(self, x):
                return x[:, self._permutation], x.new_zeros(x.shape[0])

        class ActNorm(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.register_buffer("initialized", torch.tensor(True))
                self.log_scale = nn.Parameter(torch.zeros(d))
                self.shift = nn.Parameter(torch.zeros(d))

            def forward(self, x):
                return (torch.exp(self.log_scale) * x + self.shift,
                        self.log_scale.sum() * x.new_ones(x.shape[0]))

        class Composite(nn.Module):
            def __init__(self, ts):
                super().__init__()
                self._transforms = nn.ModuleList(ts)

        class Flow(nn.Module):
            def __init__(self, ts):
                super().__init__()
                self._transform = Composite(ts)

            def log_prob(self, y):
                z, total = y, y.new_zeros(y.shape[0])
                for t in self._transform._transforms:
                    z, ld = t(z)
                    total = total + ld
                return (-0.5 * (z ** 2).sum(1)
                        - 0.5 * z.shape[1] * math.log(2 * math.pi) + total)

        state, n = random_flow_state(7)
        with nfc.from_state_dict(state) as flow:
            sd = nfc.to_state_dict(flow)
            ys = points(30, 8)
            ours = as_list(flow.log_prob(ys))
        ts = [ActNorm(DIM),
              Coupling(sd[P + "1.identity_features"].tolist(),
                       sd[P + "1.transform_features"].tolist(), (16, 16)),
              Perm(list(range(DIM))),
              Coupling(sd[P + "3.identity_features"].tolist(),
                       sd[P + "3.transform_features"].tolist(), (8,)),
              Perm(list(range(DIM))),
              Coupling(sd[P + "5.identity_features"].tolist(),
                       sd[P + "5.transform_features"].tolist(), ())]
        model = Flow(ts).double()
        model.load_state_dict(sd, strict=True)
        with torch.no_grad():
            theirs = model.log_prob(torch.tensor(ys, dtype=torch.float64))
        self.assert_close(ours, theirs.tolist())

    @unittest.skipIf(nflows is None or torch is None,
                     "needs nflows and torch")
    def test_real_nflows_flow(self):
        from nflows.distributions.normal import StandardNormal
        from nflows.flows.base import Flow
        from nflows.transforms.base import CompositeTransform
        from nflows.transforms.coupling import AffineCouplingTransform
        from nflows.transforms.normalization import ActNorm
        from nflows.transforms.permutations import ReversePermutation
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, i, o):
                super().__init__()
                self.net = nn.Sequential(nn.Linear(i, 32), nn.ReLU(),
                                         nn.Linear(32, o))

            def forward(self, x, context=None):
                return self.net(x)

        torch.manual_seed(0)
        ts = [ActNorm(DIM)]
        for k in range(3):
            mask = [(i + k) % 2 for i in range(DIM)]
            ts += [AffineCouplingTransform(mask, Net), ReversePermutation(DIM)]
        flow_t = Flow(CompositeTransform(ts), StandardNormal([DIM]))
        flow_t.eval()
        for p in flow_t.parameters():
            nn.init.uniform_(p, -0.3, 0.3)
        ys = torch.randn(40, DIM, dtype=torch.float32)
        with torch.no_grad():
            want = flow_t.log_prob(ys).tolist()
        with nfc.from_state_dict(flow_t.state_dict()) as flow:
            self.assert_close(flow.log_prob(ys.tolist()), want)


if __name__ == "__main__":
    unittest.main()
