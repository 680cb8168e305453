# SPDX-License-Identifier: MIT
# The checks of the shell tests (tests/cli/test_cli.sh,
# tests/examples/test_two_moons.sh), sourced by them.  Every check counts;
# a failed one says what it compared and the run goes on, so that one
# report shows every failure.  checks_finish gives the verdict.

fails=0
checks=0
ok() { checks=$((checks + 1)); }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*" >&2; }
# expect STATUS DESCRIPTION -- command...: runs it, output in out.txt/err.txt
expect() {
    want=$1; what=$2; shift 3
    "$@" >out.txt 2>err.txt
    got=$?
    if [ "$got" -eq "$want" ]; then ok; else
        fail "$what: exit $got, expected $want"; sed 's/^/    /' err.txt >&2
    fi
}
# has FILE TEXT DESCRIPTION: FILE contains the fixed string TEXT
has() {
    if grep -F -q -- "$2" "$1"; then ok; else
        fail "$3: '$2' not in $1"; sed 's/^/    /' "$1" >&2
    fi
}
# check DESCRIPTION command...: the command succeeds
check() { what=$1; shift; if "$@"; then ok; else fail "$what"; fi; }
# absent FILE DESCRIPTION: FILE does not exist
absent() { if [ -e "$1" ]; then fail "$2: $1 exists"; else ok; fi; }

# checks_tmpdir NAME: work in a fresh directory, removed at the end.
checks_tmpdir() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
    trap 'rm -rf "$tmp"' EXIT INT TERM
    cd "$tmp" || exit 1
}

# checks_finish NAME: the verdict, and the exit status that carries it.
checks_finish() {
    if [ "$fails" -ne 0 ]; then
        echo "$1: $fails of $checks checks failed" >&2
        exit 1
    fi
    echo "$1: all $checks checks passed"
}
