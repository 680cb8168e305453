#!/bin/sh
# SPDX-License-Identifier: MIT
# The variational example (examples/energy_fit.c), cheaply: a short run of
# each energy whose figures must be sane, not the full target (make energy
# and docs/variational.md have that).
#
#   sh tests/examples/test_energy_fit.sh build/examples/energy_fit
#                                                       (or: make test-energy)
#
# Checks: a bad option exits 2, --help exits 0; after 2000 steps of 128
# draws the ELBO lies below the grid's log Z (it is a lower bound, up to
# the estimate's noise), KL(q || p) is small and the importance-sampled
# log Z is within 0.2 of the grid's.
set -u

B=${1:?usage: test_energy_fit.sh path/to/energy_fit}
[ -x "$B" ] || { echo "test_energy_fit: $B is not an executable" >&2; exit 1; }
fail=0

"$B" --no-such-option >/dev/null 2>&1
[ $? -eq 2 ] || { echo "test_energy_fit: a bad option did not exit 2"; fail=1; }
"$B" --help >/dev/null 2>&1 || { echo "test_energy_fit: --help failed"; fail=1; }
"$B" --energy 5 >/dev/null 2>&1
[ $? -eq 2 ] || { echo "test_energy_fit: --energy 5 did not exit 2"; fail=1; }

out=$("$B" --quiet --steps 2000 --batch 128 --draws 20000) || {
    echo "test_energy_fit: the short run failed"; exit 1; }
echo "$out"
# The table's rows: name KL ELBO logZ_IS logZ_grid |IS-grid| ...
rows=$(echo "$out" | awk '/^U[1-4] /' | wc -l)
[ "$rows" -eq 4 ] || { echo "test_energy_fit: $rows energies reported, want 4"; fail=1; }
echo "$out" | awk '
/^U[1-4] / {
    if (!($3 <= $5 + 0.01)) { print "test_energy_fit: " $1 ": ELBO " $3 " above log Z " $5; bad = 1 }
    if (!($2 >= -0.01 && $2 < 0.5)) { print "test_energy_fit: " $1 ": KL " $2 " outside [-0.01, 0.5)"; bad = 1 }
    if (!($6 < 0.2)) { print "test_energy_fit: " $1 ": |logZ_IS - logZ_grid| " $6 " >= 0.2"; bad = 1 }
}
END { exit bad }' || fail=1
echo "$out" | tail -n 1 | grep -q '^max_abs_logz_error=[0-9.]*$' || {
    echo "test_energy_fit: the last line is not max_abs_logz_error=<value>"; fail=1; }
[ $fail -eq 0 ] && echo "test_energy_fit: ok"
exit $fail
