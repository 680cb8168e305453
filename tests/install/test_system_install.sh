#!/bin/sh
# SPDX-License-Identifier: MIT
# Installing into the live system, as root, with the real ldconfig: for CI
# on a disposable machine (it changes PREFIX, /usr/local by default, for a
# few seconds and puts it back).
#   1. install-lib with LDCONFIG= (the step turned off): a program linked
#      with pkg-config's flags alone does not start (libnvpflow.so.1 not
#      found: the problem `make install` used to leave behind);
#   2. install-lib as it is: it runs ldconfig, and the same program starts
#      without LD_LIBRARY_PATH or rpath; the Python package (a copy outside
#      the tree, no NVPFLOW_LIBRARY, no pkg-config) finds the library
#      through the ldconfig cache;
#   3. uninstall-lib: ldconfig again; the cache no longer lists it.
# Skips (and changes nothing) unless run as root with ldconfig, or when
# PREFIX already holds a libnvpflow.
# Run from the repository root: sh tests/install/test_system_install.sh
set -eu
MAKE=${MAKE:-make}
PREFIX=${PREFIX:-/usr/local}
CC=${CC:-cc}
libdir="$PREFIX/lib"
fail() { echo "system-install: FAILED: $*" >&2; exit 1; }
skip() { echo "system-install: SKIPPED ($*)"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root"
command -v ldconfig >/dev/null 2>&1 || skip "ldconfig not found"
[ ! -e "$libdir/libnvpflow.so.1" ] && [ ! -e "$libdir/libnvpflow.a" ] ||
    skip "$libdir already holds a libnvpflow"
in_cache() { ldconfig -p | awk -v f="$libdir/libnvpflow.so.1" '$NF == f { found = 1 } END { exit !found }'; }
in_cache && skip "the linker's cache already lists $libdir/libnvpflow.so.1"

tmp=$(mktemp -d)
# Directories under PREFIX that install-lib creates are removed again.
find "$PREFIX" -type d > "$tmp/dirs-before" 2>/dev/null || true
cleanup() {
    $MAKE --no-print-directory uninstall-lib PREFIX="$PREFIX" > /dev/null 2>&1 || true
    find "$PREFIX" -depth -type d 2>/dev/null | while read -r d; do
        grep -qxF "$d" "$tmp/dirs-before" || rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

$MAKE --no-print-directory install-lib PREFIX="$PREFIX" LDCONFIG= > "$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make install-lib LDCONFIG="; }
grep -q "note: the dynamic linker's cache does not list $libdir/libnvpflow.so.1" "$tmp/make.log" ||
    fail "install-lib without ldconfig did not say the cache lacks the library"
# shellcheck disable=SC2046
$CC -std=c11 examples/quickstart.c $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs nvpflow) \
    -o "$tmp/quickstart"
if env -u LD_LIBRARY_PATH "$tmp/quickstart" > /dev/null 2>&1; then
    fail "the program started before ldconfig ran: this check would prove nothing"
fi
echo "system-install: without ldconfig, a program linked against $libdir does not start (as expected)"

$MAKE --no-print-directory install-lib PREFIX="$PREFIX" > "$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make install-lib"; }
grep -qx "ldconfig" "$tmp/make.log" || fail "make install-lib did not run ldconfig"
in_cache || fail "after make install-lib the cache does not list $libdir/libnvpflow.so.1"
if grep -q "^note: the dynamic linker's cache does not list" "$tmp/make.log"; then
    fail "install-lib printed its note although the cache lists the library"
fi
env -u LD_LIBRARY_PATH "$tmp/quickstart" > /dev/null || fail "the program does not start after make install-lib"
echo "system-install: make install-lib ran ldconfig; the program starts without LD_LIBRARY_PATH: ok"

mkdir "$tmp/py" "$tmp/nopc"
cp -R examples/python/nvpflow "$tmp/py/"
got=$(cd "$tmp/py" && env -u LD_LIBRARY_PATH -u NVPFLOW_LIBRARY -u PYTHONPATH -u PKG_CONFIG_PATH \
    PKG_CONFIG_LIBDIR="$tmp/nopc" python3 -c \
    'import os, nvpflow; print(os.path.realpath(nvpflow.library_path)); nvpflow.Chain.alternating(2, 2, (8,), seed=1).log_prob([[0.0, 0.0]])') ||
    fail "the Python package does not find the library through the ldconfig cache"
[ "$got" = "$(realpath "$libdir/libnvpflow.so.1")" ] || fail "the Python package loaded $got"
echo "system-install: the Python package finds $libdir/libnvpflow.so.1 through the ldconfig cache alone: ok"

$MAKE --no-print-directory uninstall-lib PREFIX="$PREFIX" > "$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make uninstall-lib"; }
grep -qx "ldconfig" "$tmp/make.log" || fail "make uninstall-lib did not run ldconfig"
in_cache && fail "after make uninstall-lib the cache still lists the library"
[ ! -e "$libdir/libnvpflow.so.1" ] || fail "uninstall-lib left $libdir/libnvpflow.so.1"
echo "system-install: make uninstall-lib removed it and ran ldconfig again: ok"
