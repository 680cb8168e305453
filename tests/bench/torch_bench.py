# SPDX-License-Identifier: MIT
"""The PyTorch / OpenBLAS side of `make bench`: the same work as
tests/bench/bench.c, timed the same way (medians over repeats).

Usage: python3 torch_bench.py THREADS
Prints one line per figure: `name value` (milliseconds per training step,
microseconds per point, or GFLOP/s).  Exits 3 when torch or numpy is
missing, so that the caller can say so."""
import statistics
import sys
import time

try:
    import numpy as np
    import torch
    import torch_model  # next to this script
    from torch_model import make_layers
except ImportError:
    sys.exit(3)

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(threads)
torch.manual_seed(0)
REPEATS = 5


def median_time(fn, repeats=REPEATS, inner=1):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


layers = make_layers()


def log_prob(y):
    return torch_model.log_prob(layers, y)


def sample(n):
    return torch_model.sample(layers, n)


# Two moons, standardised, as the reference configuration (no sklearn
# needed: the same arcs plus noise).
rng = np.random.default_rng(0)
t_out = np.linspace(0, np.pi, 1000)
X = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                    np.stack([1 - np.cos(t_out), 0.5 - np.sin(t_out)], 1)])
X += rng.normal(scale=0.05, size=X.shape)
X = (X - X.mean(0)) / X.std(0)
X = torch.tensor(X, dtype=torch.float32)
opt = torch.optim.Adam(layers.parameters(), lr=1e-4)


def step():
    batch = X[rng.choice(X.shape[0], 100)]
    loss = -log_prob(batch).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


for _ in range(20):
    step()
print("train_ms %.4f" % (median_time(step, inner=40) * 1e3), flush=True)

with torch.no_grad():
    for n, reps in ((1000, 20), (100000, 1)):
        sample(n)
        s = sample(n)
        print("sample_us_%d %.4f" % (n, median_time(lambda: sample(n), inner=reps) / n * 1e6), flush=True)
        print("log_prob_us_%d %.4f" % (n, median_time(lambda: log_prob(s), inner=reps) / n * 1e6), flush=True)

# sgemm through numpy (OpenBLAS when Debian's alternatives point there).
shapes = [("fwd_100", 100, 512, 512, False, False),
          ("fwd_1000", 1000, 512, 512, False, False),
          ("dx_100", 100, 512, 512, False, True),
          ("dw_100", 512, 512, 100, True, False)]
for name, m, n, k, ta, tb in shapes:
    a = np.random.rand(k, m).astype(np.float32).T if ta else np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(n, k).astype(np.float32).T if tb else np.random.rand(k, n).astype(np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    inner = max(1, int(2e9 / (2 * m * n * k)) // 10)
    t = median_time(lambda: np.matmul(a, b, out=c), repeats=7, inner=inner)
    print("gemm_%s %.4f" % (name, 2 * m * n * k / t / 1e9), flush=True)
