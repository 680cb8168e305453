# SPDX-License-Identifier: MIT
"""Held-out NLL of the main job against the same training in PyTorch, over
many seeds: the comparison behind "the same held-out NLL".

One run of the reference configuration is not a measurement of an
implementation: its held-out NLL moves by a tenth or more from seed to
seed, and even with the same start two float32 implementations part after
about a hundred steps (see `make lockstep`).  So this runs both over a
range of seeds and compares the two distributions: medians, means, and
bootstrap 95% intervals for the differences.  The seeds give the two
implementations different starts (each draws its own data, initial
parameters and minibatches from the seed), so the runs are not pairs.

libnvpflow: the main job (build/examples/two_moons --seed S; its figures
go to OUT and are removed), rerun every time.  PyTorch: torch_heldout.py S STEPS CLIP on
one thread, the same configuration, clipping and parameter average; its
output is kept in OUT/torch-sS-nSTEPS-cCLIP.txt and reused when present,
since PyTorch does not change between runs of this script (delete the
files to rerun it).  Both report the parameter average's held-out NLL.

Usage: python3 parity.py MAIN_JOB OUT FIRST-LAST [STEPS [CLIP [JOBS]]]
JOBS runs that many trainings at once (default 1).  With more than one,
the times printed are those of runs sharing the machine.
Needs torch, numpy and scikit-learn for the PyTorch side.
"""
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
# The tolerance the summary judges the difference of means against.
MARGIN = 0.03


def run_ours(main_job, out, seed, steps, clip):
    figure = os.path.join(out, "ours-s%d" % seed)
    cmd = [main_job, "--seed", str(seed), "--steps", str(steps),
           "--clip", str(clip), "--quiet",
           "--svg", figure + ".svg", "--gif", figure + ".gif"]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t
    for ext in (".svg", ".gif"):  # drawn only to time the whole job
        if os.path.exists(figure + ext):
            os.remove(figure + ext)
    # Exit status 3: training stopped after 100 refused steps in a row;
    # the model is still evaluated, and that result is the run's result.
    if p.returncode not in (0, 3):
        sys.exit("parity: %s exited %d:\n%s" % (" ".join(cmd), p.returncode,
                                                  p.stderr))
    last = p.stdout.strip().splitlines()[-1]
    if not last.startswith("heldout_nll="):
        sys.exit("parity: unexpected last line from the main job: " + last)
    note = "stopped" if p.returncode == 3 else ""
    return float(last.split("=", 1)[1]), secs, note


def run_torch(out, seed, steps, clip):
    path = os.path.join(out, "torch-s%d-n%d-c%g.txt" % (seed, steps, clip))
    cached = os.path.exists(path)
    if not cached:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        cmd = [sys.executable, os.path.join(HERE, "torch_heldout.py"),
               str(seed), str(steps), "%g" % clip]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                           cwd=HERE)
        if p.returncode != 0:
            sys.exit("parity: %s failed:\n%s" % (" ".join(cmd), p.stderr))
        # Written whole or not at all, so an interrupted run is redone.
        with open(path + ".part", "w") as f:
            f.write(p.stdout)
        os.replace(path + ".part", path)
    with open(path) as f:
        lines = f.read().split("\n")
    lines = [l for l in lines if l.strip()]
    final = lines[-1].split()
    # "seed S clip C heldout_last X heldout_ema Y"
    if final[0] != "seed" or int(final[1]) != seed:
        sys.exit("parity: %s does not end with seed %d's result" % (path, seed))
    ema = float(final[final.index("heldout_ema") + 1])
    # The progress line at the last step ends with the seconds trained.
    secs = None
    if len(lines) > 1 and lines[-2].split()[0] == str(steps):
        secs = float(lines[-2].split()[-1].rstrip("s"))
    return ema, secs, cached


def bootstrap(a, b, stat, reps=10000):
    """95% interval of stat(a) - stat(b), resampling each side."""
    rng = random.Random(12345)  # the same interval from the same data
    d = sorted(stat(rng.choices(a, k=len(a))) - stat(rng.choices(b, k=len(b)))
               for _ in range(reps))
    return d[int(0.025 * reps)], d[int(0.975 * reps) - 1]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main_job, out = sys.argv[1], sys.argv[2]
    first, last = (int(x) for x in sys.argv[3].split("-"))
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
    clip = float(sys.argv[5]) if len(sys.argv) > 5 else 300.0
    jobs = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    seeds = list(range(first, last + 1))
    os.makedirs(out, exist_ok=True)
    print("parity: %d seeds (%d-%d), %d steps, clipping at %g, %d run(s) at "
          "a time" % (len(seeds), first, last, steps, clip, jobs), flush=True)

    ours, theirs = {}, {}
    done = [0]

    def progress(what, seed):
        done[0] += 1
        # One write per line: runs finish on several threads.
        sys.stderr.write("parity: %3d/%d  %s seed %d\n" % (
            done[0], 2 * len(seeds), what, seed))
        sys.stderr.flush()

    def task(kind, seed):
        if kind == "ours":
            ours[seed] = run_ours(main_job, out, seed, steps, clip)
        else:
            theirs[seed] = run_torch(out, seed, steps, clip)
        progress(kind, seed)

    # The long PyTorch runs first, so that the short ones fill the gaps.
    order = [("torch", s) for s in seeds] + [("ours", s) for s in seeds]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for f in [pool.submit(task, k, s) for k, s in order]:
            f.result()

    print("%6s %12s %12s %10s %10s" % ("seed", "libnvpflow", "PyTorch",
                                       "ours, s", "PyTorch, s"))
    for s in seeds:
        nll, secs, note = ours[s]
        tnll, tsecs, _ = theirs[s]
        print("%6d %12.4f %12.4f %10.1f %10s %s" % (
            s, nll, tnll, secs, "%.1f" % tsecs if tsecs else "-", note))
    a = [ours[s][0] for s in seeds]
    b = [theirs[s][0] for s in seeds]
    for name, v in (("libnvpflow", a), ("PyTorch", b)):
        print("%-10s median %.3f  mean %.3f  sd %.3f  range %.3f-%.3f  "
              "at or below 1.32: %d of %d" % (
                  name, statistics.median(v), statistics.mean(v),
                  statistics.stdev(v) if len(v) > 1 else 0.0, min(v), max(v),
                  sum(x <= 1.32 for x in v), len(v)))
    for name, stat in (("means", statistics.mean),
                       ("medians", statistics.median)):
        lo, hi = bootstrap(a, b, stat)
        print("difference of %-7s (libnvpflow - PyTorch): %+.3f, 95%% "
              "interval %+.3f to %+.3f" % (name, stat(a) - stat(b), lo, hi))
    # Runs of one seed are not pairs (different starts), so compare every
    # run with every other: the chance that a libnvpflow run ends lower
    # than a PyTorch run (0.5: neither tends lower; Mann-Whitney's U / nm).
    lower = sum((x < y) + 0.5 * (x == y) for x in a for y in b)
    print("a libnvpflow run ends lower than a PyTorch run in %.0f%% of the "
          "%d pairs of runs" % (100.0 * lower / (len(a) * len(b)),
                                len(a) * len(b)))
    # Two questions about the difference of means: are the two the same
    # within MARGIN (the whole interval inside +-MARGIN), and is
    # libnvpflow worse by more than MARGIN (the interval's upper end at or
    # above it: not ruled out)?
    lo, hi = bootstrap(a, b, statistics.mean)
    print("same mean within +-%.2f: %s; libnvpflow worse by %.2f or more: "
          "%s (upper end of the interval %+.3f)" % (
              MARGIN, "yes" if -MARGIN < lo and hi < MARGIN else
              "not shown", MARGIN, "ruled out" if hi < MARGIN else
              "not ruled out", hi))
    if len(seeds) < 10:
        print("(fewer than 10 seeds: bootstrap intervals this small are "
              "too narrow to trust)")
    ts = [theirs[s][1] for s in seeds if theirs[s][1]]
    if ts:
        mine = statistics.median(x[1] for x in ours.values())
        caveats = []
        if jobs > 1:
            caveats.append("%d runs at a time shared the machine" % jobs)
        if any(theirs[s][2] for s in seeds):
            caveats.append("PyTorch times include earlier runs kept in " + out)
        print("time, median: the main job %.1f s (whole run, on every "
              "CPU), PyTorch %.1f s (training, one thread): %.2fx%s" % (
                  mine, statistics.median(ts), mine / statistics.median(ts),
                  "; " + "; ".join(caveats) if caveats else ""))


if __name__ == "__main__":
    main()
