# SPDX-License-Identifier: MIT
"""Density-estimation quality of `nvpflow fit` on real tables, against the
classical estimators (make quality; issue 14 item 4).  A benchmark, not a
test: it prints a table and fails only when something cannot run.

Data sets: scikit-learn's bundled load_wine (13 columns), load_breast_cancer
(30), load_digits (64, integer pixels plus U(0,1) dequantisation noise
drawn once per seed), load_iris (4) and two moons (2000 points, noise
0.05, drawn per seed).  Per seed, a 60/20/20 train/validation/test split
(numpy's default_rng(seed) permutation), standardised with the mean and
population sd of the training rows.  Reported: the mean test log
likelihood per example, in nats, in that standardised space (higher is
better), and the wall time of each fit.

Methods:
  nvpflow     `nvpflow fit train.csv --val val.csv --seed S` with its
              defaults (plus --fit-args), on one thread (--threads 1:
              results do not depend on it), scored with `nvpflow score`
  budget      the same with --budget SECONDS (--budget, default 60)
  bf16        the defaults with --precision bf16, fit and score (the
              networks' large matrix products in bfloat16; needs
              AVX512-BF16, else they warn and run in fp32)
  gaussian    full-covariance Gaussian, maximum likelihood on train
  gmm         GaussianMixture (full covariances), k in 1..10 chosen on
              the validation rows
  kde         KernelDensity (Gaussian kernel), bandwidth chosen on the
              validation rows from a grid of 40 values
  torch       the model nvpflow fit built (read back with `nvpflow info
              --json`) trained the same way in PyTorch (quality_torch.py):
              only when torch is importable, and only after nvpflow

Usage: python3 quality.py NVPFLOW OUTDIR [options]
  --datasets a,b,..  of wine, breast_cancer, digits, iris, moons (all)
  --seeds 0,1,2      split seeds (0,1,2)
  --methods a,b,..   of nvpflow, budget, bf16, gaussian, gmm, kde, torch
                     (default: all but bf16, where available)
  --budget S         the budget row's --budget (default 60)
  --fit-args "..."   extra arguments for nvpflow fit
  --label NAME       the row name of nvpflow in the table
  --per-seed         also print every seed's figure
  --jobs N           run N data set and seed pairs at once (default 1;
                     the times are then those of fits sharing the machine)
Needs numpy and scikit-learn (Debian: python3-numpy, python3-sklearn);
torch (python3-torch) only for the torch row.
"""
import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time

try:
    import numpy as np
    from sklearn import datasets as skd
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import KernelDensity
except ImportError as e:  # the Makefile target says what is missing
    sys.exit("quality: needs numpy and scikit-learn (Debian: python3-numpy "
             "python3-sklearn): %s" % e)

DATASETS = ["wine", "breast_cancer", "digits", "iris", "moons"]
METHODS = ["nvpflow", "budget", "bf16", "gaussian", "gmm", "kde", "torch"]


def load(name, seed):
    """The raw rows of a data set (float64), the same for every method."""
    if name == "wine":
        return skd.load_wine().data
    if name == "breast_cancer":
        return skd.load_breast_cancer().data
    if name == "iris":
        return skd.load_iris().data
    if name == "digits":
        x = skd.load_digits().data
        return x + np.random.default_rng(1000 + seed).uniform(size=x.shape)
    if name == "moons":
        return skd.make_moons(2000, noise=0.05, random_state=seed)[0]
    raise ValueError(name)


def split(x, seed):
    """60/20/20, standardised on the training rows."""
    n = len(x)
    p = np.random.default_rng(seed).permutation(n)
    n_tr, n_va = int(round(0.6 * n)), int(round(0.2 * n))
    tr, va, te = x[p[:n_tr]], x[p[n_tr:n_tr + n_va]], x[p[n_tr + n_va:]]
    mu, sd = tr.mean(0), tr.std(0)
    sd[sd == 0] = 1.0
    return [(v - mu) / sd for v in (tr, va, te)]


def gaussian_ll(tr, te):
    mu = tr.mean(0)
    cov = np.cov(tr, rowvar=False, bias=True)
    _, logdet = np.linalg.slogdet(cov)
    d = te - mu
    m = np.einsum("ij,ij->i", d @ np.linalg.inv(cov), d)
    lp = -0.5 * (m + logdet + tr.shape[1] * math.log(2 * math.pi))
    return float(np.mean(lp)), float(np.min(lp))


def gmm_ll(tr, va, te, seed):
    best = None
    for k in range(1, 11):
        if k > len(tr):
            break
        g = GaussianMixture(k, covariance_type="full", random_state=seed,
                            n_init=1).fit(tr)
        v = g.score(va)
        if best is None or v > best[0]:
            best = (v, k, g)
    return float(best[2].score(te)), "k=%d" % best[1]


def kde_ll(tr, va, te):
    best = None
    for h in np.logspace(-2, 1, 40):
        v = KernelDensity(bandwidth=h).fit(tr).score_samples(va).mean()
        if best is None or v > best[0]:
            best = (v, h)
    k = KernelDensity(bandwidth=best[1]).fit(tr)
    return float(k.score_samples(te).mean()), "h=%.3g" % best[1]


def write_csv(path, x):
    np.savetxt(path, x, delimiter=",", fmt="%.9g")


def run(cmd, what):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("quality: %s failed (exit %d): %s\n%s" %
                 (what, p.returncode, " ".join(map(shlex.quote, cmd)),
                  p.stderr[-3000:]))
    return p


def nvpflow_ll(exe, d, seed, fit_args, name="model", score_args=()):
    model = os.path.join(d, name + ".nvp")
    cmd = [exe, "fit", os.path.join(d, "train.csv"), "--val",
           os.path.join(d, "val.csv"), "-o", model, "--seed", str(seed),
           "--threads", "1", "--quiet", "--json"] + fit_args
    t = time.perf_counter()
    p = run(cmd, "nvpflow fit")
    secs = time.perf_counter() - t
    summary = json.loads(p.stdout)
    with open(os.path.join(d, name + ".json"), "w") as f:
        f.write(p.stdout)
    s = run([exe, "score", model, os.path.join(d, "test.csv"), "--threads",
             "1"] + list(score_args), "nvpflow score")
    lp = np.array([float(v) for v in s.stdout.split()])
    note = "%s steps, best at %s" % (summary.get("steps"),
                                     summary.get("best_step"))
    return float(lp.mean()), secs, note, float(lp.min())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("nvpflow")
    ap.add_argument("outdir")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods",
                    default=",".join(m for m in METHODS if m != "bf16"))
    ap.add_argument("--fit-args", default="")
    ap.add_argument("--label", default="nvpflow fit")
    ap.add_argument("--per-seed", action="store_true")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--budget", type=float, default=60)
    a = ap.parse_args()
    names = [s for s in a.datasets.split(",") if s]
    seeds = [int(s) for s in a.seeds.split(",") if s]
    methods = [m for m in a.methods.split(",") if m]
    for n in names:
        if n not in DATASETS:
            sys.exit("quality: unknown data set %r (of %s)" % (n, DATASETS))
    for m in methods:
        if m not in METHODS:
            sys.exit("quality: unknown method %r (of %s)" % (m, METHODS))
    if "torch" in methods:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("quality: torch is not importable (Debian: python3-torch): "
                  "no PyTorch row", file=sys.stderr)
            methods.remove("torch")
    if "torch" in methods and "nvpflow" not in methods:
        sys.exit("quality: the torch row trains the model nvpflow fit "
                 "built: add nvpflow to --methods")
    exe = os.path.abspath(a.nvpflow)
    fit_args = shlex.split(a.fit_args)
    label = {"nvpflow": a.label,
             "budget": "%s --budget %g" % (a.label, a.budget),
             "bf16": "%s --precision bf16" % a.label,
             "gaussian": "full-covariance Gaussian",
             "gmm": "GaussianMixture, k on validation",
             "kde": "KernelDensity, bandwidth on validation",
             "torch": "PyTorch, the same model and training"}
    res = {}  # (method, data set) -> list of (ll, secs)

    def one(name, seed):
        d = os.path.join(a.outdir, "%s-s%d" % (name, seed))
        os.makedirs(d, exist_ok=True)
        tr, va, te = split(load(name, seed), seed)
        for part, x in (("train", tr), ("val", va), ("test", te)):
            write_csv(os.path.join(d, part + ".csv"), x)
        out = []
        for m in methods:
            t = time.perf_counter()
            note, worst = "", None
            if m == "nvpflow":
                ll, secs, note, worst = nvpflow_ll(exe, d, seed, fit_args)
            elif m == "budget":
                ll, secs, note, worst = nvpflow_ll(
                    exe, d, seed, fit_args + ["--budget", str(a.budget)],
                    "budget")
            elif m == "bf16":
                ll, secs, note, worst = nvpflow_ll(
                    exe, d, seed, fit_args + ["--precision", "bf16"], "bf16",
                    ["--precision", "bf16"])
            elif m == "gaussian":
                ll, worst = gaussian_ll(tr, te)
            elif m == "gmm":
                ll, note = gmm_ll(tr, va, te, seed)
            elif m == "kde":
                ll, note = kde_ll(tr, va, te)
            else:
                from quality_torch import torch_ll
                ll, note = torch_ll(exe, d, seed)
            if m != "nvpflow":
                secs = time.perf_counter() - t
            out.append((m, ll, secs))
            if a.per_seed:
                print("%-14s seed %d  %-8s %10.3f  %6.1f s  %s%s" %
                      (name, seed, m, ll, secs, note,
                       "" if worst is None else
                       ", lowest test row %.4g" % worst),
                      file=sys.stderr, flush=True)
        return name, out

    jobs = [(n, s) for n in names for s in seeds]
    if a.jobs > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(a.jobs) as ex:
            done = list(ex.map(lambda j: one(*j), jobs))
    else:
        done = [one(*j) for j in jobs]
    for name, out in done:
        for m, ll, secs in out:
            res.setdefault((m, name), []).append((ll, secs))
    # The table: mean over seeds (and the spread), then the mean time.
    print("Test log-likelihood per example (nats, standardised space; mean "
          "over seeds %s, +- half the range); mean seconds per fit\n" %
          ",".join(map(str, seeds)))
    print("| method | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for m in methods:
        cells = []
        for name in names:
            v = res.get((m, name))
            lls = [x[0] for x in v]
            spread = (max(lls) - min(lls)) / 2
            cells.append("%.2f +- %.2f" % (sum(lls) / len(lls), spread))
        print("| %s | %s |" % (label[m], " | ".join(cells)))
    for m in methods:
        cells = []
        for name in names:
            v = res.get((m, name))
            cells.append("%.1f s" % (sum(x[1] for x in v) / len(v)))
        print("| %s, time | %s |" % (label[m], " | ".join(cells)))


if __name__ == "__main__":
    main()
