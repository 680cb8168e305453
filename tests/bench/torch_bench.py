"""The PyTorch / OpenBLAS side of `make bench`: the same work as
tests/bench/bench.c, timed the same way (medians over repeats).

Usage: python3 torch_bench.py THREADS
Prints one line per figure: `name value` (milliseconds per training step,
microseconds per point, or GFLOP/s).  Exits 3 when torch or numpy is
missing, so that the caller can say so."""
import math
import os
import statistics
import sys
import time

try:
    import numpy as np
    import torch
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

    def forward(self, x):
        x1, x2 = self.split(x)
        shift, log_scale = self.net(x1).chunk(2, dim=1)
        return self.join(x1, x2 * torch.exp(log_scale) + shift)

    def inverse(self, y):
        y1, y2 = self.split(y)
        shift, log_scale = self.net(y1).chunk(2, dim=1)
        return self.join(y1, (y2 - shift) * torch.exp(-log_scale)), -log_scale.sum(1)


layers = torch.nn.ModuleList([Coupling(i % 2 == 1) for i in range(4)])
LOG2PI = math.log(2 * math.pi)


def log_prob(y):
    ildj = torch.zeros(y.shape[0])
    for layer in reversed(layers):
        y, l = layer.inverse(y)
        ildj = ildj + l
    return (-0.5 * y.pow(2) - 0.5 * LOG2PI).sum(1) + ildj


def sample(n):
    x = torch.randn(n, 2)
    for layer in layers:
        x = layer(x)
    return x


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
