# SPDX-License-Identifier: MIT
"""Run by tests/install/test_python_install.sh with the Python of a virtual
environment into which `pip install` put the nvpflow package, outside the
source tree, with no NVPFLOW_LIBRARY or LD_LIBRARY_PATH: imports the
package, checks where it and the library came from, then trains, samples,
scores and round-trips a small flow.
Usage: python python_smoke.py LIBDIR VERSION"""
import math
import os
import sys
import tempfile

libdir, version = sys.argv[1], sys.argv[2]
for var in ("NVPFLOW_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH"):
    assert var not in os.environ, "%s is set" % var

import nvpflow  # noqa: E402

pkg = os.path.dirname(os.path.abspath(nvpflow.__file__))
assert pkg.startswith(sys.prefix + os.sep), \
    "nvpflow imported from %s, not from the environment %s" % (pkg, sys.prefix)
lib = os.path.realpath(nvpflow.library_path)
assert lib.startswith(os.path.realpath(libdir) + os.sep), \
    "library %s is not the one in %s" % (nvpflow.library_path, libdir)
assert nvpflow.version() == version, (nvpflow.version(), version)

xy, _ = nvpflow.two_moons(1000, 0.05, seed=0)
with nvpflow.Scaler(2) as scaler, \
        nvpflow.Chain.alternating(2, layers=4, hidden=(32, 32), seed=1) as flow, \
        nvpflow.Adam(flow, lr=2e-3) as opt, nvpflow.Rng(2) as rng:
    data = scaler.fit_transform(xy)
    first = sum(flow.log_prob(data)) / -1000.0
    for _ in range(300):
        flow.train_step(opt, rng, data, 100)
    nll = sum(flow.log_prob(data)) / -1000.0
    assert math.isfinite(nll) and nll < first - 0.3, (first, nll)
    samples, lp = flow.sample(200, rng, with_log_prob=True)
    assert len(samples) == 200 and all(math.isfinite(v) for v in lp)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "moons.nvp")
        flow.save(path, scaler=scaler)
        again, sc = nvpflow.Chain.load(path)
        with again, sc:
            assert list(again.log_prob(samples)) == list(flow.log_prob(samples))
print("python: nvpflow %s from %s, library %s: mean NLL %.3f -> %.3f after "
      "300 steps; sampled, scored and reloaded 200 points"
      % (version, pkg, nvpflow.library_path, first, nll))
