#!/bin/sh
# SPDX-License-Identifier: MIT
# make distcheck: makes the release tarball (tests/install/make_dist.sh),
# checks what it holds, unpacks it in a temporary directory, builds it and
# runs `make check` there; then `make dist` inside the unpacked tree (no
# git there: the fallback way) must give the same list of files.
# Usage, from the repository root: sh tests/install/distcheck.sh NAME
set -eu
[ $# -eq 1 ] || { echo "usage: $0 NAME" >&2; exit 2; }
name=$1
MAKE=${MAKE:-make}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "distcheck: FAILED: $*" >&2; exit 1; }

sh tests/install/make_dist.sh "$name" "$tmp/$name.tar.gz"
gzip -dc "$tmp/$name.tar.gz" | tar -tf - | grep -v '/$' | sort > "$tmp/files"
for f in LICENSE Makefile include/nvpflow.h include/nvpflow.hpp src/nvpflow.map \
    pkgconfig/nvpflow.pc.in pkgconfig/nvpflowConfig.cmake.in tests/ensure_check.sh \
    examples/python/pyproject.toml; do
    grep -qx "$name/$f" "$tmp/files" || fail "the tarball lacks $f"
done
if grep -E "^$name/(build|lib)/|\.o\$|__pycache__|^$name/\.git/" "$tmp/files"; then
    fail "the tarball holds build outputs or git data (above)"
fi
if command -v git >/dev/null 2>&1 && [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ] &&
    [ "${NVP_DIST_NO_GIT:-0}" != 1 ]; then
    git ls-files | sed "s|^|$name/|" | sort > "$tmp/tracked"
    # Tracked files deleted in the working tree are not shipped.
    for f in $(git ls-files --deleted); do sed -i "\|^$name/$f\$|d" "$tmp/tracked"; done
    cmp -s "$tmp/tracked" "$tmp/files" || { diff "$tmp/tracked" "$tmp/files" >&2 || true;
        fail "the tarball's files are not the tracked files"; }
    echo "distcheck: the tarball holds exactly the $(wc -l < "$tmp/files") tracked files"
fi

mkdir "$tmp/unpack"
gzip -dc "$tmp/$name.tar.gz" | (cd "$tmp/unpack" && tar -xf -)
echo "distcheck: building and running make check in the unpacked $name"
(cd "$tmp/unpack/$name" && $MAKE --no-print-directory all > "$tmp/build.log" 2>&1) ||
    { tail -n 40 "$tmp/build.log" >&2; fail "make in the unpacked tree"; }
(cd "$tmp/unpack/$name" && $MAKE --no-print-directory check > "$tmp/check.log" 2>&1) ||
    { tail -n 40 "$tmp/check.log" >&2; fail "make check in the unpacked tree"; }
grep -E '^[0-9]+%: Checks: ' "$tmp/check.log" || true

# The fallback (no git) inside the unpacked, built tree ships the same files.
(cd "$tmp/unpack/$name" && $MAKE --no-print-directory dist > "$tmp/dist2.log" 2>&1) ||
    { cat "$tmp/dist2.log" >&2; fail "make dist in the unpacked tree"; }
gzip -dc "$tmp/unpack/$name/$name.tar.gz" | tar -tf - | grep -v '/$' | sort > "$tmp/files2"
cmp -s "$tmp/files" "$tmp/files2" || { diff "$tmp/files" "$tmp/files2" >&2 || true;
    fail "make dist without git ships other files than the tarball it came from"; }
echo "distcheck: $name.tar.gz builds and passes make check; make dist without git gives the same files"
