#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes sure the Check unit-test framework (and pkg-config, which the
# Makefile asks for Check's flags) is installed before `make test` builds the
# suite.  Does nothing when `pkg-config --exists check` already succeeds.
# Installs the Debian/Ubuntu packages when running as root with apt-get;
# otherwise says what to install and fails.
set -u

have_check() {
    command -v pkg-config >/dev/null 2>&1 && pkg-config --exists check
}

if have_check; then
    exit 0
fi

if ! command -v pkg-config >/dev/null 2>&1; then
    what="pkg-config and the Check unit-test framework"
else
    what="the Check unit-test framework (pkg-config cannot find 'check')"
fi

uid=$(id -u 2>/dev/null || echo 1)
if [ "$uid" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure_check: installing $what with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get -q update </dev/null >/dev/null &&
        apt-get -q install -y --no-install-recommends check pkg-config \
            </dev/null >/dev/null; then
        if have_check; then
            exit 0
        fi
        echo "ensure_check: installed, but pkg-config still cannot find check" >&2
        exit 1
    fi
    echo "ensure_check: apt-get could not install check and pkg-config" >&2
    exit 1
fi

# printf is a shell builtin: the message gets out even with a bare PATH.
printf '%s\n' >&2 \
    "ensure_check: the tests need $what." \
    "Install them, then run 'make test' again:" \
    "  Debian/Ubuntu:  sudo apt-get install check pkg-config" \
    "  Fedora/RHEL:    sudo dnf install check-devel pkgconf-pkg-config" \
    "  Arch:           sudo pacman -S check pkgconf" \
    "  macOS (brew):   brew install check pkg-config" \
    "  Alpine:         sudo apk add check-dev pkgconf" \
    "If Check lives under a non-standard prefix, add its lib/pkgconfig" \
    "directory to PKG_CONFIG_PATH."
exit 1
