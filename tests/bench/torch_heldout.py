# SPDX-License-Identifier: MIT
"""The reference configuration in PyTorch, trained for the held-out
comparison in docs/main-job.md: two moons (2000 points, noise 0.05, scikit-learn's
make_moons with random_state=seed), standardised; 4 couplings of 512-512
ReLU MLPs; Adam 1e-4, batch 100.  Every 1000 steps (and at the last) it prints the NLL on the
training set and on a fresh held-out draw (random_state=seed + 1000003)
standardised with the training scaler; the last line gives the held-out
NLL of the last iterate and of the parameters' exponential moving average
(decay 0.999, as the C main job's --ema reports).  CLIP > 0 clips the
gradient's norm to CLIP before each step, as the C main job's --clip does.

Usage: OPENBLAS_NUM_THREADS=1 python3 torch_heldout.py SEED [STEPS [CLIP]]
Needs torch, numpy and scikit-learn (Debian: python3-torch python3-sklearn).
"""
import sys, time
import torch, numpy as np
import torch_model  # next to this script
from torch_model import make_layers
from sklearn import datasets
from sklearn.preprocessing import StandardScaler
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
clip = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
torch.set_num_threads(1)
torch.manual_seed(seed)
X, _ = datasets.make_moons(n_samples=2000, noise=.05, random_state=seed)
sc = StandardScaler().fit(X)
X = torch.tensor(sc.transform(X), dtype=torch.float32)
Xh, _ = datasets.make_moons(n_samples=2000, noise=.05, random_state=seed + 1000003)
Xh = torch.tensor(sc.transform(Xh), dtype=torch.float32)
layers = make_layers()
def log_prob(y):
    return torch_model.log_prob(layers, y)
opt = torch.optim.Adam(layers.parameters(), lr=1e-4)
rng = np.random.default_rng(seed)
params = list(layers.parameters())
average = [p.detach().clone() for p in params]
t = time.time()
for s in range(1, steps + 1):
    batch = X[rng.choice(X.shape[0], 100)]
    loss = -log_prob(batch).mean()
    opt.zero_grad(); loss.backward()
    torch_model.clip_grad_norm(params, clip)
    opt.step()
    with torch.no_grad():
        for a, p in zip(average, params):
            a.mul_(0.999).add_(p, alpha=0.001)
    if s % 1000 == 0 or s == steps:
        with torch.no_grad():
            print(s, "train_nll %.4f heldout %.4f" % (-log_prob(X).mean().item(), -log_prob(Xh).mean().item()), "%.1fs" % (time.time()-t), flush=True)
with torch.no_grad():
    last = -log_prob(Xh).mean().item()
    for a, p in zip(average, params):
        p.copy_(a)
    print("seed %d clip %g heldout_last %.4f heldout_ema %.4f" % (seed, clip, last, -log_prob(Xh).mean().item()), flush=True)
