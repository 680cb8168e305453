#!/bin/sh
# SPDX-License-Identifier: MIT
# ABI guard for the shared library (`make check-abi`).
#
#   sh tests/abi/check_abi.sh LIBRARY EXPORTED_LIST [HEADER]
#   sh tests/abi/check_abi.sh --update LIBRARY EXPORTED_LIST
#
# Fails, saying why, when
#   - the dynamic symbols the library defines differ from EXPORTED_LIST
#     (the committed, sorted list of function names; a diff is printed),
#   - anything outside the nvp_ namespace is exported, or an export is not
#     a function of version node NVPFLOW_1,
#   - the functions declared in the public header (comments stripped by the
#     preprocessor) and the exports differ,
#   - the SONAME is not libnvpflow.so.N, or the library needs a shared
#     object other than libc.so.6 and libm.so.6 (and the dynamic loader,
#     which provides __tls_get_addr for the thread-local error messages, and
#     libpthread.so.0 where glibc older than 2.34 keeps the thread functions
#     there).
# --update rewrites EXPORTED_LIST from the library instead (after an
# intended change of the interface).
set -u

update=0
if [ "${1:-}" = "--update" ]; then
    update=1
    shift
fi
if [ $# -lt 2 ]; then
    echo "usage: $0 [--update] LIBRARY EXPORTED_LIST [HEADER]" >&2
    exit 2
fi
lib=$1
expected=$2
header=${3:-include/nvpflow.h}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

if ! nm -D --defined-only "$lib" >"$tmp/nm"; then
    echo "check_abi: nm cannot read $lib" >&2
    exit 1
fi
# Lines are "ADDRESS TYPE NAME@@VERSION"; the version node's own symbol
# (NVPFLOW_1, type A) is not an export.
awk '$3 != "NVPFLOW_1" { print $2, $3 }' "$tmp/nm" >"$tmp/syms"
sed 's/^[^ ]* //; s/@.*//' "$tmp/syms" | LC_ALL=C sort -u >"$tmp/names"

if [ "$update" = 1 ]; then
    cp "$tmp/names" "$expected"
    echo "check_abi: wrote $(wc -l <"$expected") names to $expected"
    exit 0
fi

status=0

if grep -v '^nvp_' "$tmp/names" >"$tmp/foreign"; then
    echo "check_abi: exported outside the nvp_ namespace:"
    sed 's/^/    /' "$tmp/foreign"
    status=1
fi

awk '$1 != "T" || $2 !~ /@@NVPFLOW_1$/' "$tmp/syms" >"$tmp/odd"
if [ -s "$tmp/odd" ]; then
    echo "check_abi: exports that are not NVPFLOW_1 functions (type name):"
    sed 's/^/    /' "$tmp/odd"
    status=1
fi

if ! diff -u "$expected" "$tmp/names" >"$tmp/diff"; then
    echo "check_abi: the exports differ from $expected (-: committed, +: built)."
    echo "If the change is intended: sh $0 --update $lib $expected"
    cat "$tmp/diff"
    status=1
fi

# Functions the header declares: every "nvp_name(" outside comments.
if ${CC:-cc} -E -P -Iinclude "$header" >"$tmp/pp" 2>"$tmp/pp.err"; then
    grep -o 'nvp_[a-z0-9_]*[[:space:]]*(' "$tmp/pp" |
        sed 's/[[:space:]]*($//' | LC_ALL=C sort -u >"$tmp/declared"
    if ! diff -u "$tmp/declared" "$tmp/names" >"$tmp/hdiff"; then
        echo "check_abi: $header declares other functions than the library" \
            "exports (-: declared only, +: exported only):"
        cat "$tmp/hdiff"
        status=1
    fi
else
    echo "check_abi: cannot preprocess $header:"
    cat "$tmp/pp.err"
    status=1
fi

readelf -d "$lib" >"$tmp/dyn" || { echo "check_abi: readelf failed" >&2; exit 1; }
soname=$(sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p' "$tmp/dyn")
case $soname in
libnvpflow.so.[0-9]*) ;;
*)
    echo "check_abi: SONAME is '$soname', expected libnvpflow.so.N"
    status=1
    ;;
esac
sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' "$tmp/dyn" >"$tmp/needed"
while read -r so; do
    case $so in
    libc.so.6 | libm.so.6 | ld-linux*.so.* | ld64.so.* | libpthread.so.0) ;;
    *)
        echo "check_abi: the library needs $so (only libc and libm allowed)"
        status=1
        ;;
    esac
done <"$tmp/needed"

if [ "$status" = 0 ]; then
    echo "check_abi: $(wc -l <"$tmp/names") nvp_* functions exported as in" \
        "$expected, all declared in $header; SONAME $soname; needs" \
        "$(tr '\n' ' ' <"$tmp/needed")"
fi
exit "$status"
