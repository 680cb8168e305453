#!/bin/sh
# SPDX-License-Identifier: MIT
# The Python package as a user installs it, with Debian's packages only (no
# PyPI): the library installed into a temporary prefix (no ldconfig), a
# virtual environment made with --system-site-packages (for setuptools and
# wheel), `pip install --no-build-isolation --no-index` of a copy of
# examples/python, then, outside the source tree and with no
# NVPFLOW_LIBRARY or LD_LIBRARY_PATH, tests/install/python_smoke.py: the
# library is found through pkg-config (PKG_CONFIG_PATH names the prefix,
# as a packager's does).  Also: without PKG_CONFIG_PATH the import fails
# and says where it looked (unless the dynamic linker finds an installed
# libnvpflow), NVPFLOW_LIBRARY overrides, pip uninstall removes it.
# Needs a python3 with venv (Debian: python3-venv), setuptools and wheel
# (python3-setuptools, python3-wheel): PYTHON, else python3, else
# /usr/bin/python3.  Without one it says it skipped (NVP_NO_SKIP=1: fails).
# Run from the repository root: sh tests/install/test_python_install.sh
set -eu
MAKE=${MAKE:-make}
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "python-install: FAILED: $*" >&2; exit 1; }
version_part() { sed -n "s/^#define NVP_VERSION_$1 \([0-9]*\)\$/\1/p" include/nvpflow.h; }
version="$(version_part MAJOR).$(version_part MINOR).$(version_part PATCH)"

py=
for p in "${PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$p" ] && command -v "$p" >/dev/null 2>&1 &&
        "$p" -c 'import ensurepip, venv, setuptools, wheel' >/dev/null 2>&1 && { py=$p; break; }
done
if [ -z "$py" ]; then
    echo "python-install: SKIPPED (no python3 with venv, setuptools and wheel;" \
        "Debian: apt-get install python3-venv python3-setuptools python3-wheel)"
    [ "${NVP_NO_SKIP:-0}" != 1 ] || fail "skipped with NVP_NO_SKIP=1"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
$MAKE --no-print-directory install-lib PREFIX="$prefix" LDCONFIG= > "$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make install-lib"; }

# A copy, so that pip's build files never land in the checkout.
mkdir "$tmp/src"
cp -R examples/python/pyproject.toml examples/python/README.md examples/python/nvpflow "$tmp/src/"
rm -rf "$tmp/src/nvpflow/__pycache__"
"$py" -m venv --system-site-packages "$tmp/venv"
vpy="$tmp/venv/bin/python"
"$vpy" -m pip install --no-build-isolation --no-index --no-cache-dir \
    --disable-pip-version-check "$tmp/src" > "$tmp/pip.log" 2>&1 ||
    { cat "$tmp/pip.log" >&2; fail "pip install"; }
pipv=$("$vpy" -c 'import importlib.metadata as m; print(m.version("nvpflow"))')
[ "$pipv" = "$version" ] ||
    fail "pip installed nvpflow $pipv; include/nvpflow.h says $version (examples/python/pyproject.toml)"
echo "python-install: pip installed nvpflow $pipv into a virtual environment ($("$vpy" --version 2>&1))"

mkdir "$tmp/run"
run() { (cd "$tmp/run" && env -u NVPFLOW_LIBRARY -u LD_LIBRARY_PATH -u PYTHONPATH \
    -u PKG_CONFIG_LIBDIR "$@"); }

run PKG_CONFIG_PATH="$prefix/lib/pkgconfig" "$vpy" "$here/python_smoke.py" "$prefix/lib" "$version" ||
    fail "the installed package with the library found through pkg-config"

# No way to the library: the error lists the places.
if run "$vpy" -c "import ctypes; ctypes.CDLL('libnvpflow.so.1')" 2>/dev/null; then
    echo "python-install: 'not found' message: SKIPPED (the dynamic linker finds an installed libnvpflow.so.1)"
else
    mkdir "$tmp/nopc"
    if run PKG_CONFIG_LIBDIR="$tmp/nopc" "$vpy" -c 'import nvpflow' 2> "$tmp/err"; then
        fail "imported without any way to the library"
    fi
    for what in "NVPFLOW_LIBRARY: not set" "ldconfig cache" "find_library" \
        "pkg-config --variable=libdir nvpflow"; do
        grep -qF "$what" "$tmp/err" || { cat "$tmp/err" >&2; fail "the import error does not mention '$what'"; }
    done
    echo "python-install: without pkg-config's help the import fails and says where it looked: ok"
fi

# NVPFLOW_LIBRARY overrides any search.
got=$(cd "$tmp/run" && env -u LD_LIBRARY_PATH -u PYTHONPATH NVPFLOW_LIBRARY="$prefix/lib/libnvpflow.so.1" \
    "$vpy" -c 'import nvpflow; print(nvpflow.library_path)')
[ "$got" = "$prefix/lib/libnvpflow.so.1" ] || fail "NVPFLOW_LIBRARY gave $got"
echo "python-install: NVPFLOW_LIBRARY overrides: ok"

"$vpy" -m pip uninstall -y nvpflow > "$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log" >&2; fail "pip uninstall"; }
if run "$vpy" -c 'import nvpflow' 2>/dev/null; then
    fail "nvpflow still imports after pip uninstall"
fi
echo "python-install: pip uninstall: ok"
