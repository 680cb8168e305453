# SPDX-License-Identifier: MIT
"""The PyTorch / OpenBLAS side of `make bench`: the same work as
tests/bench/bench.c, timed the same way (medians over repeats).

Usage: python3 torch_bench.py THREADS
Prints one line per figure of the tutorial's model: `name value`
(milliseconds per training step, microseconds per point, or GFLOP/s).

       python3 torch_bench.py serve THREADS
Times the general-D models on request, so that bench.c can alternate
bursts of its own calls with bursts of these in one run.  It reads one
command a line on stdin and answers each on stdout:
    info                   -> `info KEY TEXT` lines (torch, its BLAS and
                              OpenBLAS's kernel), then `end`
    model D K H B N ADAM   -> `ok`: K couplings over D dimensions with
                              H-H ReLU conditioners (the library's
                              alternating masks, PyTorch's default
                              initialisation, seed 0), N points drawn from
                              N(0, I) for log_prob, a minibatch of B rows,
                              Adam (lr 1e-4) when ADAM is 1
    time CALL REPS         -> `ok SECONDS`: seconds per call over REPS calls
                              after one untimed call; CALL is train (a
                              minibatch of B rows drawn with replacement
                              from the N points, forward, backward, Adam),
                              grad (the gradient of the first B points'
                              mean NLL, no optimizer) or logprob (the N
                              points' log densities, under inference_mode)
    quit
Failures answer `error TEXT`.

Exits 3 when torch or numpy is missing (in serve mode after printing
`missing MODULE`), so that the caller can say so.  The caller sets the
environment: OPENBLAS_NUM_THREADS and OMP_NUM_THREADS to THREADS, and
whatever else it gives the peer."""
import os
import statistics
import sys
import time

try:
    import numpy as np
    import torch
    import torch_model  # next to this script
    from torch_model import make_layers
except ImportError as e:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        print("missing %s" % (e.name or e), flush=True)
    sys.exit(3)

REPEATS = 5


def median_time(fn, repeats=REPEATS, inner=1):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def tutorial(threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
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


# ------------------------------------------------------ serve: general D
def blas_info():
    """(key, text) pairs: torch's version and build, the BLAS libraries
    mapped into this process after a matrix product, and OpenBLAS's
    configuration, kernel (corename), threading and thread count where
    it can be read."""
    import ctypes
    import re
    config = torch.__config__.show()
    found = [m.group(0) for m in
             re.finditer(r"CPU capability usage: \w+|BLAS_INFO=\w+", config)]
    out = [("torch", "%s, %d threads, %s" % (
        torch.__version__, torch.get_num_threads(),
        ", ".join(found) or "no BLAS in torch.__config__.show()"))]
    a = torch.ones(64, 64)
    (a @ a).sum().item()
    libs = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                base = os.path.basename(path)
                if ("blas" in base or "mkl" in base) and path not in libs:
                    libs.append(path)
    except OSError:
        out.append(("blas", "unknown (no /proc/self/maps)"))
    parallel = {0: "sequential", 1: "pthread", 2: "openmp"}
    openblas = None
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            corename = lib.openblas_get_corename
        except (OSError, AttributeError):
            continue
        corename.restype = ctypes.c_char_p
        config = lib.openblas_get_config
        config.restype = ctypes.c_char_p
        openblas = "%s; corename %s; %s, %d threads; %s" % (
            config().decode(), corename().decode(),
            parallel.get(lib.openblas_get_parallel(), "?"),
            lib.openblas_get_num_threads(), os.path.realpath(path))
        break
    if openblas:
        out.append(("blas", "OpenBLAS: " + openblas))
    elif any(os.path.basename(p).startswith("libblas") for p in libs):
        out.append(("blas", "REFERENCE BLAS (%s): the peer is not at its "
                    "best; install OpenBLAS (Debian: libopenblas0-pthread)"
                    % ", ".join(os.path.realpath(p) for p in libs)))
    else:
        out.append(("blas", "not OpenBLAS: %s" % (", ".join(libs) or
                                                  "no BLAS library mapped")))
    cfg = getattr(np, "__config__", None)
    info = getattr(cfg, "blas_opt_info", None) if cfg else None
    if isinstance(info, dict):
        out.append(("numpy", "%s, blas_opt_info libraries %s" % (
            np.__version__, ",".join(info.get("libraries", [])) or "?")))
    else:
        out.append(("numpy", np.__version__))
    env = ["%s=%s" % (k, os.environ[k]) for k in
           ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_") if k in os.environ]
    out.append(("env", " ".join(env) or "(none of the BLAS/malloc settings)"))
    return out


class Model:
    def __init__(self, D, K, H, B, N, adam):
        torch.manual_seed(0)
        self.layers = make_layers(K, D, H)
        self.params = list(self.layers.parameters())
        gen = torch.Generator().manual_seed(1)
        self.X = torch.randn(N, D, generator=gen)
        self.B, self.N, self.gen = B, N, gen
        self.opt = (torch.optim.Adam(self.params, lr=1e-4) if adam
                    else None)

    def loss(self, x):
        return -torch_model.log_prob(self.layers, x).mean()

    def train(self):
        if self.opt is None:
            raise ValueError("this model has no optimizer")
        idx = torch.randint(self.N, (self.B,), generator=self.gen)
        loss = self.loss(self.X[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def grad(self):
        for p in self.params:
            p.grad = None
        loss = self.loss(self.X[:self.B])
        loss.backward()
        return loss

    def logprob(self):
        with torch.inference_mode():
            return torch_model.log_prob(self.layers, self.X)


def serve(threads):
    torch.set_num_threads(threads)
    model = None
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "quit":
                break
            elif words[0] == "info":
                for key, text in blas_info():
                    print("info %s %s" % (key, " ".join(text.split())))
                print("end")
            elif words[0] == "model":
                model = None  # free the previous model first
                model = Model(*(int(w) for w in words[1:7]))
                print("ok")
            elif words[0] == "time":
                if model is None:
                    raise ValueError("no model")
                fn = getattr(model, words[1])
                reps = int(words[2])
                out = fn()  # untimed, as bench.c does before a burst
                if not bool(torch.isfinite(out).all()):
                    raise ValueError("%s: not finite" % words[1])
                t = time.perf_counter()
                for _ in range(reps):
                    fn()
                print("ok %.9f" % ((time.perf_counter() - t) / reps))
            else:
                raise ValueError("unknown command %r" % words[0])
        except Exception as e:  # reported to bench.c, which goes on
            print("error %s" % " ".join(("%s: %s" % (type(e).__name__, e))
                                        .split()))
        sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        tutorial(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
