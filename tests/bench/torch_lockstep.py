# SPDX-License-Identifier: MIT
"""Replays a libnvpflow training run in PyTorch from the same start: the
data, initial parameters and minibatch rows that tests/bench/lockstep.c
wrote (the main job's run for one seed, with its gradient-norm clipping,
if any).  Prints how far apart the two
runs' minibatch losses are over the steps, and both held-out NLLs (last
iterate and parameter average, decay 0.999).

The two runs compute the same functions in float32 with different
summation orders, so they agree to rounding at first; over thousands of
steps such differences grow (a ReLU input changes sign in one run and not
the other), and the final models differ as two seeds' would.  What the
replay shows is where that happens and that, until it does, both
libraries take the same steps.

Usage (make lockstep runs both):
  build/bench/lockstep SEED STEPS DIR
  OPENBLAS_NUM_THREADS=1 python3 tests/bench/torch_lockstep.py DIR
Needs torch and numpy (Debian: python3-torch).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model  # noqa: E402

H = 512
DECAY = 0.999


def load(path, dtype, shape=None):
    a = np.fromfile(path, dtype=dtype)
    return a.reshape(shape) if shape else a


def set_params(layers, flat):
    """libnvpflow's flat vector: per coupling, per dense layer W (fan_in x
    fan_out, row-major) then the bias; torch keeps W as (out, in)."""
    at = 0
    for layer in layers:
        for lin in (m for m in layer.net if isinstance(m, torch.nn.Linear)):
            fan_out, fan_in = lin.weight.shape
            w = flat[at:at + fan_in * fan_out].reshape(fan_in, fan_out)
            at += fan_in * fan_out
            b = flat[at:at + fan_out]
            at += fan_out
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(b.copy()))
    assert at == flat.size, "parameter count %d, used %d" % (flat.size, at)


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    X = torch.from_numpy(load(os.path.join(d, "data.f32"), "<f4", (-1, 2)))
    Xh = torch.from_numpy(load(os.path.join(d, "heldout.f32"), "<f4",
                               (-1, 2)))
    rows = load(os.path.join(d, "rows.i32"), "<i4", (-1, 100))
    c_loss = load(os.path.join(d, "loss.f32"), "<f4").astype(np.float64)
    with open(os.path.join(d, "result.txt")) as f:
        result = f.read().strip()
    clip = float(result.split("clip ")[1].split()[0])
    layers = torch_model.make_layers()
    set_params(layers, load(os.path.join(d, "params0.f32"), "<f4"))
    params = list(layers.parameters())
    average = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-4)
    steps = rows.shape[0]
    t_loss = np.empty(steps)
    for s in range(steps):
        batch = X[torch.from_numpy(rows[s].astype(np.int64))]
        loss = -torch_model.log_prob(layers, batch).mean()
        t_loss[s] = loss.item()
        opt.zero_grad()
        loss.backward()
        torch_model.clip_grad_norm(params, clip)
        opt.step()
        with torch.no_grad():
            for a, p in zip(average, params):
                a.mul_(DECAY).add_(p, alpha=1 - DECAY)
        if (s + 1) % 1000 == 0:
            print("step %d" % (s + 1), file=sys.stderr, flush=True)
    rel = np.abs(t_loss - c_loss) / np.maximum(np.abs(c_loss), 1e-12)
    for upto in (1, 10, 100, 1000, steps):
        if upto <= steps:
            print("steps 1-%d: largest relative loss difference %.2e"
                  % (upto, rel[:upto].max()))
    for tol in (1e-4, 1e-2, 1e-1):
        over = np.nonzero(rel > tol)[0]
        print("first step with a relative difference above %g: %s"
              % (tol, over[0] + 1 if over.size else "none"))
    with torch.no_grad():
        last = -torch_model.log_prob(layers, Xh).mean().item()
        for a, p in zip(average, params):
            p.copy_(a)
        ema = -torch_model.log_prob(layers, Xh).mean().item()
    print("torch:      heldout_last %.4f heldout_ema %.4f" % (last, ema))
    print("libnvpflow: " + result)
    refused = int(result.split("refused ")[1].split()[0])
    if refused:
        print("note: libnvpflow refused %d step(s) (a gradient too large for "
              "Adam) that PyTorch took; the runs part there at the latest"
              % refused)


if __name__ == "__main__":
    main()
