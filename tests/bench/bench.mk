# SPDX-License-Identifier: MIT
# The benchmark and the PyTorch comparisons, included by the top-level
# Makefile (run from the repository's root: make bench, make lockstep,
# make parity).  Nothing here is part of the product build or the tests.
.PHONY: bench lockstep parity
# Performance figures, side by side with PyTorch/OpenBLAS when importable.
$(BUILD)/bench/bench: tests/bench/bench.c tests/bench/bench_conditional.c \
		tests/bench/bench_conditional.h tests/bench/bench_precision.c \
		tests/bench/bench_precision.h tests/bench/bench_util.h $(STATIC)
	@mkdir -p $(BUILD)/bench
	$(CC) $(BASE_CFLAGS) -O2 -Isrc -o $@ tests/bench/bench.c \
	    tests/bench/bench_conditional.c tests/bench/bench_precision.c \
	    $(STATIC) $(LIBS)

bench: $(BUILD)/bench/bench
	./$(BUILD)/bench/bench tests/bench

# The main job's run for one seed replayed in PyTorch from the same start
# (same data, initial parameters and minibatches): how long the two stay
# in step, and both held-out NLLs.  Needs a Python with torch and numpy
# (NVP_BENCH_PYTHON, else the first python3 that has them).
# LOCKSTEP_CLIP=0 replays the run without gradient-norm clipping, as
# version 0.2.0's main job trained; empty means the main job's limit.
LOCKSTEP_SEED ?= 0
LOCKSTEP_STEPS ?= 10000
LOCKSTEP_CLIP ?=
$(BUILD)/bench/lockstep: tests/bench/lockstep.c $(STATIC)
	@mkdir -p $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ tests/bench/lockstep.c $(STATIC) $(LIBS)

# Shell code that sets $$py to a Python with torch and numpy
# (NVP_BENCH_PYTHON, else the first python3 that has them) or fails.
FIND_TORCH_PYTHON = py=; for p in "$$NVP_BENCH_PYTHON" python3 /usr/bin/python3; do \
	    [ -n "$$p" ] && "$$p" -c 'import torch, numpy' 2>/dev/null && \
	        { py=$$p; break; }; \
	done; \
	[ -n "$$py" ] || { echo "$@: no Python with torch and numpy" >&2; exit 1; }

lockstep: $(BUILD)/bench/lockstep
	@dir=$(BUILD)/lockstep/seed$(LOCKSTEP_SEED); mkdir -p $$dir; \
	$(FIND_TORCH_PYTHON); \
	./$(BUILD)/bench/lockstep $(LOCKSTEP_SEED) $(LOCKSTEP_STEPS) $$dir \
	    $(if $(LOCKSTEP_CLIP),native $(LOCKSTEP_CLIP)) && \
	OPENBLAS_NUM_THREADS=1 "$$py" tests/bench/torch_lockstep.py $$dir

# The main job's held-out NLL against the same training in PyTorch over a
# range of seeds (tests/bench/parity.py): medians, means and bootstrap
# intervals of their differences.  Each PyTorch run takes about 2.5
# minutes on one thread and is kept in $(BUILD)/parity for the next time.
# PARITY_CLIP is the main job's default clipping limit.
PARITY_SEEDS ?= 0-19
PARITY_STEPS ?= 10000
PARITY_CLIP ?= 300
PARITY_JOBS ?= 1
parity: $(BUILD)/examples/two_moons
	@$(FIND_TORCH_PYTHON); \
	"$$py" -c 'import sklearn' 2>/dev/null || \
	    { echo "parity: $$py has no scikit-learn (Debian: python3-sklearn)" >&2; exit 1; }; \
	"$$py" tests/bench/parity.py $(BUILD)/examples/two_moons $(BUILD)/parity \
	    $(PARITY_SEEDS) $(PARITY_STEPS) $(PARITY_CLIP) $(PARITY_JOBS)


# Density-estimation quality of `nvpflow fit` with its defaults on real
# tables (scikit-learn's wine, breast_cancer, digits, iris, and two
# moons) against a full-covariance Gaussian, GaussianMixture,
# KernelDensity and, when torch is importable, the same model trained in
# PyTorch: test log-likelihood per example and seconds per fit, over
# QUALITY_SEEDS splits (tests/bench/quality.py; docs/quality.md has the
# table).  Needs a Python with numpy and scikit-learn (NVP_BENCH_PYTHON,
# else the first python3 that has them).  QUALITY_ARGS go to nvpflow fit,
# QUALITY_JOBS runs that many fits at once (timings then share the CPUs).
.PHONY: quality
QUALITY_DATASETS ?= wine,breast_cancer,digits,iris,moons
QUALITY_SEEDS ?= 0,1,2
QUALITY_METHODS ?= nvpflow,budget,gaussian,gmm,kde,torch
QUALITY_ARGS ?=
QUALITY_JOBS ?= 1
QUALITY_BUDGET ?= 60
quality: $(CLI_BIN)
	@py=; for p in "$$NVP_BENCH_PYTHON" python3 /usr/bin/python3; do \
	    [ -n "$$p" ] && "$$p" -c 'import sklearn, numpy' 2>/dev/null && \
	        { py=$$p; break; }; \
	done; \
	[ -n "$$py" ] || { echo "quality: no Python with numpy and scikit-learn" \
	    "(Debian: python3-numpy python3-sklearn; NVP_BENCH_PYTHON names one)" >&2; exit 1; }; \
	"$$py" -c 'import torch' 2>/dev/null || \
	    echo "quality: $$py has no torch (Debian: python3-torch): no PyTorch row" >&2; \
	"$$py" tests/bench/quality.py $(CLI_BIN) $(BUILD)/quality \
	    --datasets $(QUALITY_DATASETS) --seeds $(QUALITY_SEEDS) \
	    --methods $(QUALITY_METHODS) --jobs $(QUALITY_JOBS) --budget $(QUALITY_BUDGET) \
	    --fit-args "$(QUALITY_ARGS)" --per-seed
