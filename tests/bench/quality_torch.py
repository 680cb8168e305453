# SPDX-License-Identifier: MIT
"""The PyTorch row of quality.py: the model `nvpflow fit` built, trained the
same way in PyTorch (float32, one thread).

The architecture comes from the fitted model (`nvpflow info --json`): its
couplings in order, each with its mask, hidden widths and log-scale clamp
(log_scale = c * tanh(raw / c)), the output layer starting at zero, then
the linear layer next to the data (y = L U x + b, L unit lower triangular,
U upper triangular with diagonal exp(d)) set to whiten the training rows
as nvp_chain_init_from_data does (Cholesky factor of the covariance plus
the same small ridge, and the mean).  The training settings come from
`nvpflow fit --json`: Adam with that learning rate, minibatches drawn with
replacement, decoupled weight decay on the couplings' parameters, the
exponential moving average of the parameters evaluated every eval_every
steps on the validation rows, patience, learning-rate drops (back to the
best parameters, learning rate times 0.3, the average restarted there)
and the step cap.  The best evaluated parameters are scored on the test
rows.  Only --noise and --dequantize are not replayed (the defaults use
neither).  PyTorch draws its own initial weights and minibatches, so the
two runs are not in step: compare means over seeds.
"""
import copy
import json
import math
import os
import subprocess
import time

import numpy as np
import torch

LOG2PI = math.log(2 * math.pi)
LR_DROP_FACTOR = 0.3


class Coupling(torch.nn.Module):
    def __init__(self, mask, hidden, clamp):
        super().__init__()
        m = torch.tensor([c == "1" for c in mask])
        self.register_buffer("a", torch.nonzero(m).flatten())
        self.register_buffer("b", torch.nonzero(~m).flatten())
        self.clamp = clamp
        widths = [len(self.a)] + list(hidden) + [2 * len(self.b)]
        layers = []
        for i in range(len(widths) - 1):
            layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        torch.nn.init.zeros_(layers[-1].weight)
        torch.nn.init.zeros_(layers[-1].bias)
        self.net = torch.nn.Sequential(*layers)

    def inverse(self, y):  # data -> base, with log|det dx/dy|
        out = self.net(y[:, self.a])
        nb = len(self.b)
        shift, ls = out[:, :nb], out[:, nb:]
        if self.clamp > 0:
            ls = self.clamp * torch.tanh(ls / self.clamp)
        x = y.clone()
        x[:, self.b] = (y[:, self.b] - shift) * torch.exp(-ls)
        return x, -ls.sum(1)


class Linear(torch.nn.Module):
    """y = L U x + b, set to whiten the rows z."""

    def __init__(self, z):
        super().__init__()
        d = z.shape[1]
        zd = z.astype(np.float64)
        mean = zd.mean(0)
        cov = (zd - mean).T @ (zd - mean) / len(zd)
        ridge = 1e-6 * np.trace(cov) / d + 1e-12
        c = np.linalg.cholesky(cov + ridge * np.eye(d))
        a = np.tril(c / np.diag(c)[None, :], -1) + np.diag(np.log(np.diag(c)))
        self.A = torch.nn.Parameter(torch.tensor(a, dtype=torch.float32))
        self.bias = torch.nn.Parameter(torch.tensor(mean, dtype=torch.float32))

    def inverse(self, y):
        d = self.A.shape[0]
        L = torch.tril(self.A, -1) + torch.eye(d)
        U = torch.triu(self.A, 1) + torch.diag(torch.exp(torch.diagonal(self.A)))
        r = (y - self.bias).T
        w = torch.linalg.solve_triangular(L, r, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(U, w, upper=True)
        return x.T, -torch.diagonal(self.A).sum().expand(y.shape[0])


class Flow(torch.nn.Module):
    def __init__(self, info, train):
        super().__init__()
        layers = []
        kinds = [l["kind"] for l in info["layers"]]
        for k, l in enumerate(info["layers"]):
            if l["kind"] == "affine coupling":
                layers.append(Coupling(l["mask"], l["hidden"], l["clamp"]))
            elif l["kind"] == "linear" and k == len(kinds) - 1:
                # The last layer is the one the data reach first: it is
                # set from the training rows themselves.
                layers.append(Linear(train))
            else:
                raise ValueError("quality_torch: no PyTorch version of a "
                                 "%s layer at position %d" % (l["kind"], k))
        self.layers = torch.nn.ModuleList(layers)

    def log_prob(self, y):
        ildj = torch.zeros(y.shape[0])
        for layer in reversed(self.layers):
            y, l = layer.inverse(y)
            ildj = ildj + l
        return (-0.5 * y.pow(2) - 0.5 * LOG2PI).sum(1) + ildj


def mean_nll(model, x):
    with torch.no_grad():
        lp = model.log_prob(x)
        v = float(-lp.double().mean())
        return v if math.isfinite(v) else math.inf


def torch_ll(exe, d, seed):
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    fit = json.load(open(os.path.join(d, "model.json")))
    info = json.loads(subprocess.run(
        [exe, "info", "--json", os.path.join(d, "model.nvp")],
        capture_output=True, text=True, check=True).stdout)
    tr, va, te = (np.loadtxt(os.path.join(d, p + ".csv"), delimiter=",",
                             ndmin=2).astype(np.float32)
                  for p in ("train", "val", "test"))
    t0 = time.perf_counter()
    model = Flow(info, tr)
    xtr, xva, xte = (torch.tensor(v) for v in (tr, va, te))
    lr, wd = fit["lr"], fit["weight_decay"]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    coupling_params = [p for l in model.layers if isinstance(l, Coupling)
                       for p in l.parameters()]
    decay = fit["average"]
    avg = copy.deepcopy(model) if decay > 0 else None
    scored = avg if avg is not None else model
    best = mean_nll(model, xva)
    best_state = copy.deepcopy(model.state_dict())
    best_step, since, drops, step = 0, 0, 0, 0
    n = len(xtr)
    for step in range(1, fit["max_steps"] + 1):
        idx = torch.randint(0, n, (fit["batch"],))
        loss = -model.log_prob(xtr[idx]).mean()
        opt.zero_grad()
        loss.backward()
        if torch.isfinite(loss):
            opt.step()
            with torch.no_grad():
                if wd > 0:
                    for p in coupling_params:
                        p.mul_(1 - lr * wd)
                if avg is not None:
                    for pa, p in zip(avg.parameters(), model.parameters()):
                        pa.mul_(decay).add_(p, alpha=1 - decay)
        if step % fit["eval_every"] and step != fit["max_steps"]:
            continue
        v = mean_nll(scored, xva)
        if v < best:
            best, best_step, since = v, step, 0
            best_state = copy.deepcopy(scored.state_dict())
        else:
            since += 1
        if fit["patience"] > 0 and since >= fit["patience"]:
            if drops >= fit["lr_drops"]:
                break
            drops += 1
            since = 0
            lr *= LR_DROP_FACTOR
            model.load_state_dict(best_state)
            if avg is not None:
                avg.load_state_dict(best_state)
            for g in opt.param_groups:
                g["lr"] = lr
    model.load_state_dict(best_state)
    ll = -mean_nll(model, xte)
    secs = time.perf_counter() - t0
    return ll, "%d steps, best at %d, %.1f s" % (step, best_step, secs)
