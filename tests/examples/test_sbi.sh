#!/bin/sh
# SPDX-License-Identifier: MIT
# The simulation-based inference example (examples/sbi_linear_gaussian.c)
# on a small problem, in a few seconds:
#
#   sh tests/examples/test_sbi.sh build/examples/sbi_linear_gaussian
#                                                    (or: make test-sbi)
#
# Checks the command line, that a short run prints its figures in range
# (a KL that is finite and not absurd, coverages that are fractions near
# 0.9), that D = 2 and D = 5 run, and that one seed gives one output.
# The targets of docs/sbi.md need the full run (make sbi); a run this
# short is not trained enough to meet them and is not asked to.
set -u

B=${1:?usage: test_sbi.sh path/to/sbi_linear_gaussian}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
[ -x "$B" ] || { echo "test_sbi: $B is not an executable" >&2; exit 1; }

. "$(dirname "$0")/../cli/checks.sh"
checks_tmpdir nvpflow-sbi

# ------------------------------------------------------- command line
expect 0 "--help" -- "$B" --help
has out.txt "Usage: sbi_linear_gaussian [options]" "--help"
bad() {
    msg=$1; shift
    expect 2 "$*" -- "$B" "$@"
    has err.txt "$msg" "$*"
    has err.txt "Try 'sbi_linear_gaussian --help'." "$*"
}
bad "--dim: '1' is not a whole number from 2 to 5" --dim 1
bad "--dim: '6' is not a whole number from 2 to 5" --dim 6
bad "unexpected argument 'x'" x
bad "unknown option '--bogus'" --bogus

# ------------------------------------------------------ a small run
# (a short parameter average: the default's 1000-step memory would still
# be half the start after 2000 steps)
SMALL="--sims 5000 --steps 2000 --eval-every 200 --hidden 32,32 --couplings 4
       --ema 0.99 --observations 5 --kl-draws 200 --calibration 60
       --cal-draws 200 --quiet"
# value KEY: the KEY=value line's value from out.txt
value() { sed -n "s/^$1=//p" out.txt; }
# in_range X LO HI: LO <= X <= HI (X a number)
in_range() { awk -v x="$1" -v lo="$2" -v hi="$3" \
    'BEGIN { exit !(x == x + 0 && x >= lo && x <= hi) }'; }

# shellcheck disable=SC2086
expect 0 "small run" -- "$B" $SMALL --seed 3
cp out.txt first.txt
kl=$(value kl_mean)
cov=$(value coverage)
# A fresh, Gaussian flow is 2 or more nats off; these steps take it to
# a few hundredths.
check "small run: KL '$kl' not in [-0.05, 0.3]" in_range "$kl" -0.05 0.3
check "small run: coverage '$cov' not in [0.7, 1]" in_range "$cov" 0.7 1
for i in 1 2 3; do
    c=$(value coverage_theta$i)
    check "small run: coverage_theta$i '$c' not in [0.6, 1]" in_range "$c" 0.6 1
done
has out.txt "best validation NLL" "small run"
# shellcheck disable=SC2086
expect 0 "small run again" -- "$B" $SMALL --seed 3
check "one seed, one output (but the time)" \
    sh -c 'grep -v "seconds\|in [0-9.]* s;" first.txt > a.txt &&
           grep -v "seconds\|in [0-9.]* s;" out.txt > b.txt && cmp -s a.txt b.txt'

for d in 2 5; do
    # shellcheck disable=SC2086
    expect 0 "--dim $d" -- "$B" $SMALL --dim $d
    check "--dim $d: coverage_theta$d missing" grep -q "^coverage_theta$d=" out.txt
    kl=$(value kl_mean)
    check "--dim $d: KL '$kl' not in [-0.05, 1]" in_range "$kl" -0.05 1
done

checks_finish test_sbi
