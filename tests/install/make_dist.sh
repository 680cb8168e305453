#!/bin/sh
# SPDX-License-Identifier: MIT
# make dist: writes OUT, a gzipped tar of the source tree under NAME/.
#   In a git checkout: `git archive` of the tracked files with their
#   content in the working tree, uncommitted changes included (untracked
#   files are left out, and listed).  Elsewhere (an unpacked tarball): the tree as it is, without
#   build outputs (build/, lib/, objects, Python caches) or old tarballs.
#   NVP_DIST_NO_GIT=1 takes the second way in a checkout too.
# Usage, from the repository root: sh tests/install/make_dist.sh NAME OUT
set -eu
[ $# -eq 2 ] || { echo "usage: $0 NAME OUT" >&2; exit 2; }
name=$1
out=$2
case $out in /*) ;; *) out="$(pwd)/$out" ;; esac
part="$out.part"
trap 'rm -f "$part"' EXIT

in_checkout() {
    [ "${NVP_DIST_NO_GIT:-0}" != 1 ] && command -v git >/dev/null 2>&1 &&
        [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ]
}

if in_checkout; then
    # A copy of the index, refreshed from the working tree, gives a tree
    # object of the tracked files as they are now; the checkout, its index
    # and its history stay untouched.
    index="$out.index"
    trap 'rm -f "$part" "$index"' EXIT
    cp "$(git rev-parse --git-path index)" "$index"
    GIT_INDEX_FILE="$index" git add --update
    tree=$(GIT_INDEX_FILE="$index" git write-tree)
    rm -f "$index"
    untracked=$(git ls-files --others --exclude-standard | wc -l)
    [ "$untracked" -eq 0 ] ||
        echo "dist: $untracked untracked file(s) left out (git add them to ship them):" \
            "$(git ls-files --others --exclude-standard | head -n 5 | tr '\n' ' ')" >&2
    git archive --format=tar --prefix="$name/" "$tree" | gzip -9n > "$part"
    how="git archive of the tracked files"
else
    tmp=$(mktemp -d)
    trap 'rm -f "$part"; rm -rf "$tmp"' EXIT
    mkdir "$tmp/$name"
    tar -cf - --exclude=./.git --exclude=./build --exclude=./lib \
        --exclude='*.o' --exclude='*.d' --exclude=__pycache__ --exclude='*.pyc' \
        --exclude='*.egg-info' --exclude=./examples/python/build \
        --exclude='./nvpflow-*.tar.gz' --exclude='./nvpflow-*.tar.gz.part' . |
        (cd "$tmp/$name" && tar -xf -)
    (cd "$tmp" && tar -cf - "$name") | gzip -9n > "$part"
    how="no git checkout: a copy of the tree less build outputs"
fi
mv "$part" "$out"
trap - EXIT
[ -z "${tmp:-}" ] || rm -rf "$tmp"
echo "dist: $out: $(gzip -dc "$out" | tar -tf - | grep -vc '/$') files ($how)"
