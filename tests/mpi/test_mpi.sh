#!/bin/sh
# SPDX-License-Identifier: MIT
# The data-parallel MPI example (examples/mpi_train.c) end to end:
#   - 2 ranks, global batch 100 (50 + 50);
#   - 3 ranks, global batch 100 (34 + 33 + 33, not divisible);
#   - 3 ranks, global batch 2 (one rank has an empty share), with --save;
#   - 1 rank, which must match the single-process run bitwise.
# Each run must report ranks_identical=yes (the replicas are bitwise equal
# at the start and the end); the multi-rank runs must stay within 1e-4
# (relative to the largest parameter) of a single process trained on the
# same batches, and the all-reduced gradient within 1e-4 of the full-batch
# gradient at every step.
#
# Needs mpicc and mpirun.  When they are missing, installs Debian's Open
# MPI if running as root with apt-get; otherwise skips (exit 0) with a
# message.  Run from anywhere: sh tests/mpi/test_mpi.sh  (or make test-mpi)
set -eu
cd "$(dirname "$0")/../.."
MAKE=${MAKE:-make}
BIN=build/examples/mpi_train

have_mpi() {
    command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1
}

if ! have_mpi; then
    uid=$(id -u 2>/dev/null || echo 1)
    if [ "$uid" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test-mpi: mpicc/mpirun missing; installing openmpi-bin and libopenmpi-dev with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        if ! { apt-get -q update </dev/null >/dev/null &&
               apt-get -q install -y --no-install-recommends openmpi-bin \
                   libopenmpi-dev </dev/null >/dev/null; }; then
            echo "test-mpi: FAILED: apt-get could not install Open MPI" >&2
            exit 1
        fi
        if ! have_mpi; then
            echo "test-mpi: FAILED: Open MPI installed, but mpicc/mpirun still not found" >&2
            exit 1
        fi
    else
        echo "test-mpi: SKIPPED: mpicc/mpirun not found (install Open MPI, e.g. apt-get install openmpi-bin libopenmpi-dev)"
        exit 0
    fi
fi

$MAKE --no-print-directory mpi-example
[ -x "$BIN" ] || { echo "test-mpi: FAILED: $BIN was not built" >&2; exit 1; }

# Launcher settings for a container: as root, no network, more ranks than
# cores.  Values already in the environment win.
MPIRUN_FLAGS=
version=$(mpirun --version 2>&1 | head -n 1)
case "$version" in
*"Open MPI"*|*"OpenRTE"*)
    MPIRUN_FLAGS="--allow-run-as-root --oversubscribe"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    major=$(printf '%s\n' "$version" | sed -n 's/.* \([0-9][0-9]*\)\.[0-9].*/\1/p')
    if [ "${major:-4}" -ge 5 ]; then
        # Open MPI 5 renamed the shared-memory transport "vader" to "sm".
        export OMPI_MCA_btl="${OMPI_MCA_btl:-self,sm}"
    else
        export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader}"
        # No ptrace-based single copy (CMA is often blocked in containers).
        export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"
        # Launch the local ranks directly, without ssh/rsh.
        if ompi_info 2>/dev/null | grep -q 'MCA plm: isolated'; then
            export OMPI_MCA_plm="${OMPI_MCA_plm:-isolated}"
        fi
    fi
    ;;
esac
echo "test-mpi: $version; btl=${OMPI_MCA_btl:-default} plm=${OMPI_MCA_plm:-default}"

TIMEOUT=
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout 300"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# value KEY FILE: the value of the last KEY=... line.
value() {
    sed -n "s/^$1=//p" "$2" | tail -n 1
}

# run NAME NP MAX_REL ARGS...: runs the example and checks its verdicts.
run() {
    name=$1 np=$2 max_rel=$3
    shift 3
    out="$tmp/$name.out"
    echo "test-mpi: [$name] mpirun -np $np $BIN $*"
    # shellcheck disable=SC2086
    if ! $TIMEOUT mpirun $MPIRUN_FLAGS -np "$np" "$BIN" "$@" >"$out" 2>"$tmp/$name.err"; then
        echo "test-mpi: [$name] FAILED: mpirun exited with an error" >&2
        cat "$out" "$tmp/$name.err" >&2
        fail=1
        return 0
    fi
    grep -E '^(shares|initial_ranks_identical|final_loss|ranks_identical|single_process_[a-z_]*)=' "$out" |
        sed "s/^/test-mpi: [$name]   /"
    ok=yes
    [ "$(value initial_ranks_identical "$out")" = yes ] || ok=no
    [ "$(value ranks_identical "$out")" = yes ] || ok=no
    rel=$(value single_process_max_rel_diff "$out")
    grel=$(value single_process_max_grad_rel_diff "$out")
    if [ -z "$rel" ] || [ -z "$grel" ] ||
        ! awk -v a="$rel" -v b="$grel" -v m="$max_rel" \
            'BEGIN { exit !(a + 0 <= m + 0 && b + 0 <= m + 0) }'; then
        ok=no
    fi
    if [ "$ok" = yes ]; then
        echo "test-mpi: [$name] ok"
    else
        echo "test-mpi: [$name] FAILED (need ranks identical and differences <= $max_rel)" >&2
        cat "$tmp/$name.err" >&2
        fail=1
    fi
}

run np2 2 1e-4 --steps 200 --hidden 32,32 --check-single
run np3_uneven 3 1e-4 --steps 200 --hidden 32,32 --batch 100 --check-single
if [ "$(value shares "$tmp/np3_uneven.out")" != "34,33,33" ]; then
    echo "test-mpi: [np3_uneven] FAILED: shares are not 34,33,33" >&2
    fail=1
fi
run np3_tiny 3 1e-4 --steps 50 --hidden 16 --batch 2 --check-single --save "$tmp/model.nvp"
if [ -s "$tmp/model.nvp" ] && grep -q "reloaded_identical=yes" "$tmp/np3_tiny.out"; then
    echo "test-mpi: [np3_tiny] model saved by rank 0 and reloaded bitwise: ok"
else
    echo "test-mpi: [np3_tiny] FAILED: --save wrote no file, or it did not reload identically" >&2
    fail=1
fi
# One rank: the same arithmetic as the single process, so exactly equal.
run np1_exact 1 0 --steps 100 --hidden 32,32 --check-single

if [ "$fail" != 0 ]; then
    echo "test-mpi: FAILED" >&2
    exit 1
fi
echo "test-mpi: all MPI checks passed"
