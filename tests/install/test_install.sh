#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the library into a temporary prefix and builds programs against
# the installed copy using only pkg-config, from C and C++, shared and
# static; then checks DESTDIR staging and that uninstall removes exactly
# what install added.  Run from the repository root: sh tests/install/test_install.sh
set -eu
MAKE=${MAKE:-make}
CC=${CC:-cc}
CXX=${CXX:-c++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

echo "install: into $prefix"
$MAKE --no-print-directory install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists nvpflow
echo "install: pkg-config finds nvpflow $(pkg-config --modversion nvpflow)"
[ "$(pkg-config --modversion nvpflow)" = "$(sed -n 's/^#define NVP_VERSION_MAJOR \([0-9]*\)$/\1/p' include/nvpflow.h).$(sed -n 's/^#define NVP_VERSION_MINOR \([0-9]*\)$/\1/p' include/nvpflow.h).$(sed -n 's/^#define NVP_VERSION_PATCH \([0-9]*\)$/\1/p' include/nvpflow.h)" ]

# C, shared: built only with pkg-config's flags, run against the prefix.
cp examples/quickstart.c "$tmp/"
# shellcheck disable=SC2046
$CC -std=c11 -Wall -Werror "$tmp/quickstart.c" $(pkg-config --cflags --libs nvpflow) -o "$tmp/qs_shared"
LD_LIBRARY_PATH="$prefix/lib" "$tmp/qs_shared" > "$tmp/out_shared"
LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/qs_shared" | grep -q "$prefix/lib/libnvpflow.so.0"
echo "install: C program linked against the installed shared library: ok"

# C, static: a fully static executable from pkg-config --static.
# shellcheck disable=SC2046
$CC -std=c11 -Wall -Werror -static "$tmp/quickstart.c" $(pkg-config --static --cflags --libs nvpflow) -o "$tmp/qs_static"
"$tmp/qs_static" > "$tmp/out_static"
if ldd "$tmp/qs_static" 2>&1 | grep -q "libnvpflow"; then
    echo "install: static executable still needs libnvpflow.so" >&2
    exit 1
fi
cmp "$tmp/out_shared" "$tmp/out_static"
echo "install: C program linked statically: ok (same output as shared)"

# C++ through the installed header-only wrapper, when there is one.
if [ -f examples/cpp/quickstart.cpp ] && [ -f "$prefix/include/nvpflow.hpp" ]; then
    cp examples/cpp/quickstart.cpp "$tmp/"
    # shellcheck disable=SC2046
    $CXX -std=c++17 -Wall -Werror "$tmp/quickstart.cpp" $(pkg-config --cflags --libs nvpflow) -o "$tmp/qs_cpp"
    LD_LIBRARY_PATH="$prefix/lib" "$tmp/qs_cpp" > /dev/null
    # shellcheck disable=SC2046
    $CXX -std=c++17 -Wall -Werror -static "$tmp/quickstart.cpp" $(pkg-config --static --cflags --libs nvpflow) -o "$tmp/qs_cpp_static"
    "$tmp/qs_cpp_static" > /dev/null
    echo "install: C++ program, shared and static: ok"
else
    # shellcheck disable=SC2046
    $CXX -std=c++17 -Wall -Werror -x c++ "$tmp/quickstart.c" $(pkg-config --cflags --libs nvpflow) -o "$tmp/qs_cxx"
    LD_LIBRARY_PATH="$prefix/lib" "$tmp/qs_cxx" > /dev/null
    echo "install: C API from C++: ok"
fi

# DESTDIR staging, then uninstall removes exactly what install added.
stage="$tmp/stage"
mkdir -p "$stage"
$MAKE --no-print-directory install PREFIX=/usr/local DESTDIR="$stage" >/dev/null
(cd "$stage" && find . ! -type d | sort) > "$tmp/installed"
grep -q '^./usr/local/include/nvpflow.h$' "$tmp/installed"
grep -q '^./usr/local/lib/libnvpflow.a$' "$tmp/installed"
grep -q '^./usr/local/lib/libnvpflow.so.0$' "$tmp/installed"
grep -q '^./usr/local/lib/pkgconfig/nvpflow.pc$' "$tmp/installed"
grep -q '^prefix=/usr/local$' "$stage/usr/local/lib/pkgconfig/nvpflow.pc"
touch "$stage/usr/local/lib/unrelated-file"
$MAKE --no-print-directory uninstall PREFIX=/usr/local DESTDIR="$stage" >/dev/null
left=$(cd "$stage" && find . ! -type d | sort)
if [ "$left" != "./usr/local/lib/unrelated-file" ]; then
    echo "install: uninstall left or removed the wrong files:" >&2
    echo "$left" >&2
    exit 1
fi
echo "install: DESTDIR staging of $(wc -l < "$tmp/installed") files, uninstall removes exactly them: ok"
