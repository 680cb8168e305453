# SPDX-License-Identifier: MIT
"""Far-out rows: what log density a fitted model gives a row far outside
the training range, against the full-covariance Gaussian fit (issue 14:
one digits row 28 training-sd out got -3.4e7 and dragged a mean to
-94,751).  A probe, not a test.

For each data set's seed-0 split written by quality.py (OUTDIR/NAME-s0),
models are fitted with `nvpflow fit train.csv --val val.csv` and the
settings of each variant below; then every test row is scored, and so are
probes: the test row nearest the mean with one column set to K training
standard deviations (K = 10, 28, 100, 1000; every column in turn, the
lowest result kept).  Printed per variant: the mean test log likelihood,
the lowest test row, and the lowest probe per K, next to the Gaussian
fit's values for the same rows.

Usage: python3 quality_tails.py NVPFLOW OUTDIR [NAME,...]
(default: breast_cancer,digits,wine; run quality.py first).
"""
import json
import math
import os
import subprocess
import sys

import numpy as np

VARIANTS = [
    ("defaults", []),
    ("--clamp 5", ["--clamp", "5"]),
    ("--clamp 0 (off)", ["--clamp", "0"]),
    ("--weight-decay 0", ["--weight-decay", "0"]),
    ("0.4.0 defaults", ["--norm", "none", "--mask", "half", "--layers", "6",
                        "--hidden", "64,64", "--clamp", "5",
                        "--weight-decay", "0", "--average", "0",
                        "--lr-drops", "0", "--patience", "10",
                        "--eval-every", "100", "--batch", "256",
                        "--steps", "5000"]),
]
KS = [10, 28, 100, 1000]


def gaussian(tr):
    mu = tr.mean(0)
    cov = np.cov(tr, rowvar=False, bias=True)
    inv = np.linalg.inv(cov)
    _, logdet = np.linalg.slogdet(cov)

    def lp(x):
        d = x - mu
        m = np.einsum("ij,ij->i", d @ inv, d)
        return -0.5 * (m + logdet + tr.shape[1] * math.log(2 * math.pi))
    return lp


def score(exe, model, x, path):
    np.savetxt(path, x, delimiter=",", fmt="%.9g")
    p = subprocess.run([exe, "score", model, path, "--threads", "1"],
                       capture_output=True, text=True, check=True)
    return np.array([float(v) for v in p.stdout.split()])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    exe, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    names = (sys.argv[3] if len(sys.argv) > 3 else
             "breast_cancer,digits,wine").split(",")
    for name in names:
        d = os.path.join(out, name + "-s0")
        tr, va, te = (np.loadtxt(os.path.join(d, p + ".csv"), delimiter=",")
                      for p in ("train", "val", "test"))
        g = gaussian(tr)
        base = te[np.argmin(np.linalg.norm(te, axis=1))]
        probes = []
        for k in KS:
            rows = np.repeat(base[None, :], tr.shape[1], axis=0)
            rows[np.arange(tr.shape[1]), np.arange(tr.shape[1])] = k
            probes.append(rows)
        allp = np.concatenate(probes)
        gp = g(allp).reshape(len(KS), -1).min(1)
        gt = g(te)
        print("%s (seed 0; %d test rows; the largest |value| among them is "
              "%.1f training sd)" % (name, len(te), np.abs(te).max()))
        print("| model | mean test | lowest test row | " +
              " | ".join("%d sd" % k for k in KS) + " |")
        print("|---|---|---|" + "---|" * len(KS))
        print("| full-covariance Gaussian | %.2f | %.4g | %s |" %
              (gt.mean(), gt.min(), " | ".join("%.4g" % v for v in gp)))
        for label, args in VARIANTS:
            model = os.path.join(d, "tails.nvp")
            subprocess.run([exe, "fit", os.path.join(d, "train.csv"), "--val",
                            os.path.join(d, "val.csv"), "-o", model,
                            "--seed", "0", "--threads", "1", "--quiet"] + args,
                           check=True, stderr=subprocess.DEVNULL)
            st = score(exe, model, te, os.path.join(d, "tails_test.csv"))
            sp = score(exe, model, allp, os.path.join(d, "tails_probe.csv"))
            sp = sp.reshape(len(KS), -1).min(1)
            print("| nvpflow fit %s | %.2f | %.4g | %s |" %
                  (label, st.mean(), st.min(),
                   " | ".join("%.4g" % v for v in sp)))
        print()


if __name__ == "__main__":
    main()
