#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the library into a temporary prefix and builds programs against
# the installed copy, as a user of the package would:
#   - pkg-config alone, from C and C++, shared and static;
#   - the installed examples, built from where they were installed;
#   - CMake find_package(nvpflow) (nvpflow::nvpflow, nvpflow::nvpflow_static,
#     version requests) and Meson dependency('nvpflow'), shared and static,
#     when cmake / meson and ninja are installed (else: skipped);
#   - the prefix moved elsewhere: pkg-config --define-prefix and CMake;
#   - nvpflow.hpp below C++17: one clear #error;
#   - when ldconfig runs (a stand-in LDCONFIG records its calls), the
#     install-lib / install-cli split, DESTDIR staging and uninstall
#     removing exactly what install added.
# Run from the repository root: sh tests/install/test_install.sh
# NVP_NO_SKIP=1 turns a skipped part into a failure (CI installs the tools).
set -eu
MAKE=${MAKE:-make}
CC=${CC:-cc}
CXX=${CXX:-c++}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

fail() { echo "install: FAILED: $*" >&2; exit 1; }
skip() {
    echo "install: $1: SKIPPED ($2)"
    [ "${NVP_NO_SKIP:-0}" != 1 ] || fail "$1 skipped with NVP_NO_SKIP=1"
}
version_part() { sed -n "s/^#define NVP_VERSION_$1 \([0-9]*\)\$/\1/p" include/nvpflow.h; }
version="$(version_part MAJOR).$(version_part MINOR).$(version_part PATCH)"

# A stand-in for ldconfig: every call appends its arguments to a log (and
# `-p` lists nothing), so the test never touches the system's cache.
ldlog="$tmp/ldconfig.log"
cat > "$tmp/fake-ldconfig" <<EOF
#!/bin/sh
echo "call:\$*" >> "$ldlog"
EOF
chmod +x "$tmp/fake-ldconfig"
ldcalls() { if [ -f "$ldlog" ]; then grep -c '^call:$' "$ldlog" || true; else echo 0; fi; }
inst() { $MAKE --no-print-directory LDCONFIG="$tmp/fake-ldconfig" "$@" >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make $*"; }; }

echo "install: into $prefix"
inst install PREFIX="$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists nvpflow || fail "pkg-config does not find nvpflow"
[ "$(pkg-config --modversion nvpflow)" = "$version" ] ||
    fail "pkg-config says $(pkg-config --modversion nvpflow), the header $version"
echo "install: pkg-config finds nvpflow $version"

# The .pc file names its directories relative to ${prefix}.
grep -q '^libdir=${prefix}/lib$' "$prefix/lib/pkgconfig/nvpflow.pc" &&
grep -q '^includedir=${prefix}/include$' "$prefix/lib/pkgconfig/nvpflow.pc" ||
    fail "nvpflow.pc: libdir/includedir not relative to \${prefix}"
[ "$(pkg-config --variable=libdir nvpflow)" = "$prefix/lib" ] ||
    fail "pkg-config libdir is $(pkg-config --variable=libdir nvpflow)"

# Running as root without DESTDIR, install-lib and uninstall-lib run
# ldconfig (here the stand-in); with DESTDIR or LDCONFIG= they do not.
if [ "$(id -u)" = 0 ]; then
    [ "$(ldcalls)" = 1 ] || fail "make install as root ran ldconfig $(ldcalls) times, not once"
    echo "install: ldconfig run once by a root install without DESTDIR: ok"
else
    [ "$(ldcalls)" = 0 ] || fail "make install as a user ran ldconfig"
    echo "install: ldconfig not run by a non-root install: ok"
fi
grep -q '^call:-p$' "$ldlog" || fail "install-lib did not look for the library in the linker's cache"
rm -f "$ldlog"

# C, shared: built only with pkg-config's flags, run against the prefix.
cp examples/quickstart.c "$tmp/"
# shellcheck disable=SC2046
$CC -std=c11 -Wall -Werror "$tmp/quickstart.c" $(pkg-config --cflags --libs nvpflow) -o "$tmp/qs_shared"
LD_LIBRARY_PATH="$prefix/lib" "$tmp/qs_shared" > "$tmp/out_shared"
LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/qs_shared" | grep -q "$prefix/lib/libnvpflow.so.1" ||
    fail "qs_shared does not load the installed libnvpflow.so.1"
echo "install: C program linked against the installed shared library: ok"

# C, static: a fully static executable from pkg-config --static.
# shellcheck disable=SC2046
$CC -std=c11 -Wall -Werror -static "$tmp/quickstart.c" $(pkg-config --static --cflags --libs nvpflow) -o "$tmp/qs_static"
"$tmp/qs_static" > "$tmp/out_static"
if ldd "$tmp/qs_static" 2>&1 | grep -q "libnvpflow"; then
    fail "static executable still needs libnvpflow.so"
fi
cmp "$tmp/out_shared" "$tmp/out_static" || fail "shared and static outputs differ"
echo "install: C program linked statically: ok (same output as shared)"

# C++ through the installed header-only wrapper.
cp examples/cpp/quickstart.cpp "$tmp/"
# shellcheck disable=SC2046
$CXX -std=c++17 -Wall -Werror "$tmp/quickstart.cpp" $(pkg-config --cflags --libs nvpflow) -o "$tmp/qs_cpp"
LD_LIBRARY_PATH="$prefix/lib" "$tmp/qs_cpp" "$tmp/qs_cpp.nvp" > /dev/null
# shellcheck disable=SC2046
$CXX -std=c++17 -Wall -Werror -static "$tmp/quickstart.cpp" $(pkg-config --static --cflags --libs nvpflow) -o "$tmp/qs_cpp_static"
"$tmp/qs_cpp_static" "$tmp/qs_cpp.nvp" > /dev/null
echo "install: C++ program, shared and static: ok"

# Below C++17 the wrapper stops at one #error that says what it needs,
# instead of a cascade of errors from inside the header.
printf '#include <nvpflow.hpp>\nint main() { return 0; }\n' > "$tmp/old.cpp"
if $CXX -std=c++14 -fsyntax-only -I"$prefix/include" "$tmp/old.cpp" 2> "$tmp/old.err"; then
    fail "nvpflow.hpp compiled as C++14"
fi
grep -q 'nvpflow.hpp needs C++17' "$tmp/old.err" || { cat "$tmp/old.err" >&2; fail "no clear #error below C++17"; }
[ "$(grep -c 'error:' "$tmp/old.err")" = 1 ] || { cat "$tmp/old.err" >&2; fail "more than the one #error below C++17"; }
echo "install: nvpflow.hpp as C++14: one #error naming C++17: ok"

# The installed examples build from where they were installed.
ex="$prefix/share/doc/nvpflow/examples"
for f in quickstart.c two_moons.c cpp/quickstart.cpp figure/gif_writer.c python/two_moons.py; do
    [ -f "$ex/$f" ] || fail "example $f not installed in $ex"
done
# shellcheck disable=SC2046
$CC -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Werror -I"$ex" -I"$ex/figure" -I"$ex/tool" \
    "$ex/two_moons.c" "$ex"/figure/*.c "$ex"/common/*.c "$ex"/tool/*.c \
    $(pkg-config --static --cflags --libs nvpflow) -static -o "$tmp/two_moons"
"$tmp/two_moons" --steps 20 --hidden 8,8 --quiet --svg "$tmp/tm.svg" --gif "$tmp/tm.gif" > /dev/null
grep -q "</svg>" "$tmp/tm.svg" || fail "the installed two_moons example wrote no figure"
echo "install: examples installed in share/doc/nvpflow/examples and built from there: ok"

# --------------------------------------------------------------- CMake
cmake_consumer() {  # cmake_consumer PREFIX BUILDDIR
    cmake -S "$here/consumer" -B "$2" -DCMAKE_PREFIX_PATH="$1" \
        -DNVP_EXPECTED_VERSION="$version" -DNVP_EXAMPLES="$1/share/doc/nvpflow/examples" \
        -DCMAKE_BUILD_TYPE=Release > "$2.log" 2>&1 &&
    cmake --build "$2" >> "$2.log" 2>&1 || { cat "$2.log" >&2; fail "CMake consumer against $1"; }
}
if command -v cmake >/dev/null 2>&1; then
    cmake_consumer "$prefix" "$tmp/cmake"
    "$tmp/cmake/qs_shared" > "$tmp/out_cmake_shared"
    "$tmp/cmake/qs_static" > "$tmp/out_cmake_static"
    "$tmp/cmake/qs_cpp" "$tmp/cmake.nvp" > /dev/null
    ldd "$tmp/cmake/qs_shared" | grep -q "$prefix/lib/libnvpflow.so.1" ||
        fail "CMake: qs_shared does not load $prefix/lib/libnvpflow.so.1"
    if ldd "$tmp/cmake/qs_static" 2>&1 | grep -q libnvpflow; then
        fail "CMake: nvpflow::nvpflow_static gave a program that needs libnvpflow.so"
    fi
    cmp "$tmp/out_shared" "$tmp/out_cmake_shared" && cmp "$tmp/out_shared" "$tmp/out_cmake_static" ||
        fail "CMake: outputs differ from the pkg-config build's"
    echo "install: CMake find_package(nvpflow $version): nvpflow::nvpflow (C, C++) and nvpflow::nvpflow_static, version requests: ok"
else
    skip "CMake consumer" "cmake not found; Debian: apt-get install cmake"
fi

# --------------------------------------------------------------- Meson
if command -v meson >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1; then
    mkdir -p "$tmp/meson-src"
    cp "$here/consumer/meson.build" "$here/consumer/meson_options.txt" \
        examples/quickstart.c examples/cpp/quickstart.cpp "$tmp/meson-src/"
    meson setup "$tmp/meson" "$tmp/meson-src" -Dexpected_version="$version" > "$tmp/meson.log" 2>&1 &&
    ninja -C "$tmp/meson" >> "$tmp/meson.log" 2>&1 || { cat "$tmp/meson.log" >&2; fail "Meson consumer"; }
    LD_LIBRARY_PATH="$prefix/lib" "$tmp/meson/qs_shared" > "$tmp/out_meson_shared"
    "$tmp/meson/qs_static" > "$tmp/out_meson_static"
    LD_LIBRARY_PATH="$prefix/lib" "$tmp/meson/qs_cpp" "$tmp/meson.nvp" > /dev/null
    LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/meson/qs_shared" | grep -q "$prefix/lib/libnvpflow.so.1" ||
        fail "Meson: qs_shared does not load $prefix/lib/libnvpflow.so.1"
    if ldd "$tmp/meson/qs_static" 2>&1 | grep -q libnvpflow; then
        fail "Meson: dependency('nvpflow', static: true) gave a program that needs libnvpflow.so"
    fi
    cmp "$tmp/out_shared" "$tmp/out_meson_shared" && cmp "$tmp/out_shared" "$tmp/out_meson_static" ||
        fail "Meson: outputs differ from the pkg-config build's"
    echo "install: Meson dependency('nvpflow') through pkg-config, shared (C, C++) and static: ok"
else
    skip "Meson consumer" "meson or ninja not found; Debian: apt-get install meson ninja-build"
fi

# ---------------------------------------------------------- moved prefix
moved="$tmp/elsewhere/prefix2"
mkdir -p "$tmp/elsewhere"
mv "$prefix" "$moved"
pc="$moved/lib/pkgconfig"
[ "$(PKG_CONFIG_PATH="$pc" pkg-config --define-prefix --variable=libdir nvpflow)" = "$moved/lib" ] ||
    fail "pkg-config --define-prefix: libdir is $(PKG_CONFIG_PATH="$pc" pkg-config --define-prefix --variable=libdir nvpflow)"
[ "$(PKG_CONFIG_PATH="$pc" pkg-config --define-prefix --variable=includedir nvpflow)" = "$moved/include" ] ||
    fail "pkg-config --define-prefix: wrong includedir"
# shellcheck disable=SC2046
$CC -std=c11 -Wall -Werror "$tmp/quickstart.c" \
    $(PKG_CONFIG_PATH="$pc" pkg-config --define-prefix --cflags --libs nvpflow) -o "$tmp/qs_moved"
LD_LIBRARY_PATH="$moved/lib" "$tmp/qs_moved" > "$tmp/out_moved"
cmp "$tmp/out_shared" "$tmp/out_moved" || fail "moved prefix: output differs"
echo "install: moved prefix: pkg-config --define-prefix finds it: ok"
if command -v cmake >/dev/null 2>&1; then
    cmake_consumer "$moved" "$tmp/cmake-moved"
    "$tmp/cmake-moved/qs_shared" > "$tmp/out_cmake_moved"
    ldd "$tmp/cmake-moved/qs_shared" | grep -q "$moved/lib/libnvpflow.so.1" ||
        fail "CMake, moved prefix: qs_shared does not load the moved library"
    cmp "$tmp/out_shared" "$tmp/out_cmake_moved" || fail "CMake, moved prefix: output differs"
    echo "install: moved prefix: CMake find_package finds it: ok"
fi
mv "$moved" "$prefix"

# An install that lost a file: find_package says which, instead of a
# target that fails at link time.
if command -v cmake >/dev/null 2>&1; then
    cp -R "$prefix" "$tmp/partial"
    rm "$tmp/partial/lib/libnvpflow.a"
    if cmake -S "$here/consumer" -B "$tmp/cmake-partial" -DCMAKE_PREFIX_PATH="$tmp/partial" \
        -DNVP_EXPECTED_VERSION="$version" -DNVP_EXAMPLES="$tmp/partial/share/doc/nvpflow/examples" \
        -DNVP_VERSION_CHECKS=OFF > "$tmp/cmake-partial.log" 2>&1; then
        fail "CMake: find_package accepted an install without libnvpflow.a"
    fi
    # (CMake wraps long messages: compare with the lines joined.)
    tr -s ' \n' '  ' < "$tmp/cmake-partial.log" |
        grep -q "expects $tmp/partial/lib/libnvpflow.a, which does not exist" ||
        { cat "$tmp/cmake-partial.log" >&2; fail "CMake: no clear message for a missing libnvpflow.a"; }
    echo "install: CMake: an incomplete install is refused, naming the missing file: ok"
fi

# ------------------------------------------ install-lib / install-cli
split="$tmp/split"
inst install-lib PREFIX="$split"
[ -f "$split/lib/libnvpflow.so.1" ] && [ -f "$split/include/nvpflow.h" ] ||
    fail "install-lib did not install the library"
[ ! -e "$split/bin/nvpflow" ] && [ ! -e "$split/share/man/man1/nvpflow.1" ] ||
    fail "install-lib installed the command-line tool"
inst uninstall-lib PREFIX="$split"
inst install-cli PREFIX="$split"
[ "$(cd "$split" && find . ! -type d | sort | tr '\n' ' ')" = "./bin/nvpflow ./share/man/man1/nvpflow.1 " ] ||
    fail "install-cli installed more or less than the tool and its manual page"
"$split/bin/nvpflow" --version | grep -q "^nvpflow $version " ||
    fail "the installed nvpflow tool does not run"
echo "install: install-lib and install-cli install their own parts only: ok"

# -------------------------------------------- DESTDIR and uninstall
stage="$tmp/stage"
mkdir -p "$stage"
rm -f "$ldlog"
inst install PREFIX=/usr/local DESTDIR="$stage"
(cd "$stage" && find . ! -type d | sort) > "$tmp/installed"
for f in include/nvpflow.h include/nvpflow.hpp lib/libnvpflow.a lib/libnvpflow.so.1 lib/libnvpflow.so \
    lib/pkgconfig/nvpflow.pc lib/cmake/nvpflow/nvpflowConfig.cmake \
    lib/cmake/nvpflow/nvpflowConfigVersion.cmake bin/nvpflow share/man/man1/nvpflow.1 \
    share/doc/nvpflow/examples/quickstart.c; do
    grep -qx "./usr/local/$f" "$tmp/installed" || fail "DESTDIR install lacks $f"
done
grep -q '^prefix=/usr/local$' "$stage/usr/local/lib/pkgconfig/nvpflow.pc" || fail "DESTDIR leaked into nvpflow.pc"
if grep -rq "$stage" "$stage/usr/local/lib/pkgconfig" "$stage/usr/local/lib/cmake"; then
    fail "DESTDIR leaked into the installed .pc or CMake files"
fi
touch "$stage/usr/local/lib/unrelated-file"
inst uninstall PREFIX=/usr/local DESTDIR="$stage"
[ "$(ldcalls)" = 0 ] || fail "a DESTDIR install or uninstall ran ldconfig"
left=$(cd "$stage" && find . ! -type d | sort)
if [ "$left" != "./usr/local/lib/unrelated-file" ]; then
    echo "$left" >&2
    fail "uninstall left or removed the wrong files"
fi
[ ! -d "$stage/usr/local/lib/cmake/nvpflow" ] && [ ! -d "$stage/usr/local/share/doc/nvpflow" ] ||
    fail "uninstall left the package's own directories"
echo "install: DESTDIR staging of $(wc -l < "$tmp/installed") files (ldconfig not run), uninstall removes exactly them: ok"

# LDCONFIG= turns the ldconfig step off, even as root.
inst install-lib PREFIX="$tmp/noldc" LDCONFIG=
[ "$(ldcalls)" = 0 ] || fail "LDCONFIG= still ran ldconfig"
echo "install: all checks passed"
