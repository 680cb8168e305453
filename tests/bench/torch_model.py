# SPDX-License-Identifier: MIT
"""The reference Real-NVP in PyTorch (the tutorial's model), shared by
torch_bench.py, torch_heldout.py and torch_lockstep.py: 4 affine couplings over 2-D data with
alternating flip, conditioner MLP 1 -> 512 -> 512 -> 2 (ReLU), output split
into shift then log_scale, raw exp, standard normal base.  make_layers
also builds the same architecture over D dimensions with hidden width H
(the masks of the library's nvp_chain_create_alternating), as the bench's
general-D models use."""
import math

import torch

LOG2PI = math.log(2 * math.pi)


class Coupling(torch.nn.Module):
    def __init__(self, flip, D=2, H=512):
        super().__init__()
        self.flip, self.d = flip, D // 2
        self.net = torch.nn.Sequential(
            torch.nn.Linear(self.d, H), torch.nn.ReLU(),
            torch.nn.Linear(H, H), torch.nn.ReLU(),
            torch.nn.Linear(H, 2 * (D - self.d)))

    def split(self, x):
        a, b = x[:, :self.d], x[:, self.d:]
        return (b, a) if self.flip else (a, b)

    def join(self, a, b):
        return torch.cat([b, a] if self.flip else [a, b], dim=1)

    def forward(self, x):              # base -> data
        x1, x2 = self.split(x)
        shift, log_scale = self.net(x1).chunk(2, dim=1)
        return self.join(x1, x2 * torch.exp(log_scale) + shift)

    def inverse(self, y):              # data -> base, with log|det dx/dy|
        y1, y2 = self.split(y)
        shift, log_scale = self.net(y1).chunk(2, dim=1)
        return self.join(y1, (y2 - shift) * torch.exp(-log_scale)), -log_scale.sum(1)


def make_layers(n=4, D=2, H=512):
    return torch.nn.ModuleList([Coupling(i % 2 == 1, D, H) for i in range(n)])


def log_prob(layers, y):
    ildj = torch.zeros(y.shape[0])
    for layer in reversed(layers):
        y, l = layer.inverse(y)
        ildj = ildj + l
    return (-0.5 * y.pow(2) - 0.5 * LOG2PI).sum(1) + ildj


def sample(layers, n):
    x = torch.randn(n, 2)
    for layer in layers:
        x = layer(x)
    return x


def clip_grad_norm(params, max_norm):
    """Gradient-norm clipping as libnvpflow's optimizer does it
    (nvp_adam_set_clip_norm): the norm of all gradients together, summed
    in float64; over max_norm, every gradient is multiplied in float32 by
    float32(max_norm / norm).  (torch.nn.utils.clip_grad_norm_ sums in
    float32 and divides by norm + 1e-6, a difference of rounding only.)
    Returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))
    if max_norm > 0 and norm > max_norm:
        scale = torch.tensor(max_norm / norm, dtype=torch.float32)
        for g in grads:
            g.mul_(scale)
    return norm
