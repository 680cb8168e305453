"""The reference configuration in PyTorch, trained for the README's
held-out comparison: two moons (2000 points, noise 0.05, scikit-learn's
make_moons with random_state=seed), standardised; 4 couplings of 512-512
ReLU MLPs; Adam 1e-4, batch 100.  Every 1000 steps it prints the NLL on the
training set and on a fresh held-out draw (random_state=seed + 1000003)
standardised with the training scaler.

Usage: OPENBLAS_NUM_THREADS=1 python3 torch_heldout.py SEED [STEPS]
Needs torch, numpy and scikit-learn (Debian: python3-torch python3-sklearn).
"""
import sys, time, math
import torch, numpy as np
from sklearn import datasets
from sklearn.preprocessing import StandardScaler
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
torch.set_num_threads(1)
torch.manual_seed(seed)
X, _ = datasets.make_moons(n_samples=2000, noise=.05, random_state=seed)
sc = StandardScaler().fit(X)
X = torch.tensor(sc.transform(X), dtype=torch.float32)
Xh, _ = datasets.make_moons(n_samples=2000, noise=.05, random_state=seed + 1000003)
Xh = torch.tensor(sc.transform(Xh), dtype=torch.float32)
class Coupling(torch.nn.Module):
    def __init__(self, flip, D=2, H=512):
        super().__init__()
        self.flip, self.d = flip, D // 2
        self.net = torch.nn.Sequential(torch.nn.Linear(self.d, H), torch.nn.ReLU(),
                                       torch.nn.Linear(H, H), torch.nn.ReLU(),
                                       torch.nn.Linear(H, 2*(D - self.d)))
    def split(self, x):
        a, b = x[:, :self.d], x[:, self.d:]
        return (b, a) if self.flip else (a, b)
    def join(self, a, b):
        return torch.cat([b, a] if self.flip else [a, b], dim=1)
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
opt = torch.optim.Adam(layers.parameters(), lr=1e-4)
rng = np.random.default_rng(seed)
t = time.time()
for s in range(1, steps + 1):
    batch = X[rng.choice(X.shape[0], 100)]
    loss = -log_prob(batch).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    if s % 1000 == 0:
        with torch.no_grad():
            print(s, "train_nll %.4f heldout %.4f" % (-log_prob(X).mean().item(), -log_prob(Xh).mean().item()), "%.1fs" % (time.time()-t), flush=True)
