#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Trains a Real-NVP flow on two moons through the nvpflow Python binding.

The Python counterpart of examples/two_moons.c (without the figures):
data -> standardise -> train with Adam -> held-out NLL -> sample -> save.
Runs with or without numpy.  From the repository root, after `make`:

    python3 examples/python/two_moons.py --steps 2000
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nvpflow  # noqa: E402


def widths(text):
    return tuple(int(w) for w in text.split(",") if w.strip())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="training points")
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=widths, default=(128, 128),
                    help="hidden widths, comma-separated (default 128,128;"
                    " the C demo uses 512,512)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--clamp", type=float, default=2.0,
                    help="log-scale bound c (0 = off; default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0,
                    help="worker threads (0 = one per CPU)")
    ap.add_argument("--save", default=None,
                    help="write the model (with its scaler) here")
    args = ap.parse_args(argv)

    print("libnvpflow %s (%s), numpy: %s" % (
        nvpflow.version(), nvpflow.library_path,
        "yes" if nvpflow.have_numpy() else "no"))

    with nvpflow.Rng(args.seed) as rng, nvpflow.Scaler(2) as scaler:
        xy, _ = nvpflow.two_moons(args.n, args.noise, rng)
        data = scaler.fit_transform(xy)

        with nvpflow.Chain.alternating(2, layers=args.layers,
                                       hidden=args.hidden, rng=rng) as flow, \
                nvpflow.Adam(flow, lr=args.lr) as opt:
            flow.set_threads(args.threads)
            flow.set_log_scale_clamp(args.clamp)
            print("flow: %d layers, hidden %s, %d parameters, %d threads"
                  % (flow.num_layers, args.hidden, flow.num_params,
                     flow.threads))
            t0 = time.time()
            window = []
            every = max(args.steps // 10, 1)
            for step in range(1, args.steps + 1):
                window.append(flow.train_step(opt, rng, data, args.batch))
                if step % every == 0 or step == args.steps:
                    print("step %6d  loss %.4f" % (step,
                                                   sum(window) / len(window)))
                    window = []
            print("trained in %.1f s" % (time.time() - t0))

            # Held-out NLL in the standardised space, and in data units.
            test_xy, _ = nvpflow.two_moons(args.n, args.noise,
                                           seed=args.seed + 1000003)
            lp = list(flow.log_prob(scaler.transform(test_xy)))
            nll = -sum(lp) / len(lp)
            print("held-out NLL: %.4f nats (standardised), %.4f (data units)"
                  % (nll, nll + scaler.log_det))

            # A few samples, mapped back to the data's units.
            z = flow.sample(5, rng)
            for row in scaler.inverse_transform(z):
                print("  sample (%+.3f, %+.3f)" % tuple(row))

            if args.save:
                flow.save(args.save, scaler=scaler)
                again, sc2 = nvpflow.Chain.load(args.save)
                with again, sc2:
                    same = again.to_bytes(sc2) == flow.to_bytes(scaler)
                print("saved %s (reloads bitwise identical: %s)"
                      % (args.save, same))
            print("heldout_nll=%s" % ("%.6f" % nll if math.isfinite(nll)
                                      else "nan"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nvpflow.NvpError as e:
        print("two_moons.py: %s: %s" % (type(e).__name__, e),
              file=sys.stderr)
        sys.exit(1)
