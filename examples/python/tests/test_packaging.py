# SPDX-License-Identifier: MIT
"""Tests of how the package finds the C library, and of its metadata.

Run from the repository root (after `make`):
    python3 -m unittest discover -s examples/python/tests -v

The lookups outside the source checkout run a copy of the package in a
subprocess with NVPFLOW_LIBRARY, LD_LIBRARY_PATH and PYTHONPATH removed.
When the dynamic linker already finds a libnvpflow.so.1 installed on this
machine, the tests that need it not to say they skipped.
(tests/install/test_python_install.sh checks `pip install` end to end.)
"""
import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(HERE)  # examples/python
ROOT = os.path.normpath(os.path.join(PKG_PARENT, "..", ".."))
if PKG_PARENT not in sys.path:
    sys.path.insert(0, PKG_PARENT)

import nvpflow  # noqa: E402
from nvpflow import _lib  # noqa: E402


def header_version():
    with open(os.path.join(ROOT, "include", "nvpflow.h")) as f:
        text = f.read()
    parts = [re.search(r"^#define NVP_VERSION_%s (\d+)$" % p, text,
                       re.M).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def system_has_library():
    """Whether the dynamic linker alone finds a libnvpflow.so.1."""
    r = subprocess.run(
        [sys.executable, "-c",
         "import ctypes; ctypes.CDLL(%r)" % _lib.SONAME],
        env=clean_env(), capture_output=True, timeout=60)
    return r.returncode == 0


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NVPFLOW_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH",
                        "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR")}
    env.update(extra)
    return env


class OutsideCheckout(unittest.TestCase):
    """A copy of the package outside the source tree."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        shutil.copytree(os.path.join(PKG_PARENT, "nvpflow"),
                        os.path.join(self.tmp, "nvpflow"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        self.empty = os.path.join(self.tmp, "no-pkgconfig")
        os.mkdir(self.empty)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def run_copy(self, code, **env):
        # PKG_CONFIG_LIBDIR hides the system's .pc files unless a test
        # sets it; PKG_CONFIG_PATH adds a directory in front.
        env.setdefault("PKG_CONFIG_LIBDIR", self.empty)
        return subprocess.run([sys.executable, "-c", code], cwd=self.tmp,
                              env=clean_env(**env), capture_output=True,
                              text=True, timeout=120)

    def test_not_found_lists_where_it_looked(self):
        if system_has_library():
            self.skipTest("a libnvpflow.so.1 is installed where the dynamic "
                          "linker finds it")
        r = self.run_copy("import nvpflow")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError: nvpflow: cannot find the libnvpflow C "
                      "library (libnvpflow.so.1)", r.stderr)
        for place in ("NVPFLOW_LIBRARY: not set",
                      "the dynamic linker's search path (LD_LIBRARY_PATH, "
                      "the ldconfig cache",
                      "ctypes.util.find_library('nvpflow')",
                      "pkg-config --variable=libdir nvpflow"):
            self.assertIn(place, r.stderr)
        # an installed package names no source checkout
        self.assertNotIn("source checkout", r.stderr)
        self.assertNotIn(ROOT, r.stderr)

    def test_found_through_pkg_config(self):
        if shutil.which("pkg-config") is None:
            self.skipTest("pkg-config not found")
        if system_has_library():
            self.skipTest("a libnvpflow.so.1 is installed where the dynamic "
                          "linker finds it (it would be found first)")
        # A prefix whose lib/ holds this tree's build (a symbolic link), as
        # `make install PREFIX=...` would leave it.
        prefix = os.path.join(self.tmp, "prefix")
        os.makedirs(os.path.join(prefix, "lib", "pkgconfig"))
        os.symlink(nvpflow.library_path,
                   os.path.join(prefix, "lib", _lib.SONAME))
        with open(os.path.join(prefix, "lib", "pkgconfig", "nvpflow.pc"),
                  "w") as f:
            f.write("prefix=%s\nlibdir=${prefix}/lib\n"
                    "includedir=${prefix}/include\n\nName: nvpflow\n"
                    "Description: test\nVersion: %s\nLibs: -L${libdir} "
                    "-lnvpflow\nCflags: -I${includedir}\n"
                    % (prefix, nvpflow.version()))
        r = self.run_copy("import nvpflow; print(nvpflow.library_path); "
                          "print(nvpflow.__file__)",
                          PKG_CONFIG_PATH=os.path.join(prefix, "lib",
                                                       "pkgconfig"))
        self.assertEqual(r.returncode, 0, r.stderr)
        path, module = r.stdout.split()
        self.assertEqual(path, os.path.join(prefix, "lib", _lib.SONAME))
        self.assertTrue(module.startswith(self.tmp), module)

    def test_override_wins(self):
        r = self.run_copy("import nvpflow; print(nvpflow.library_path)",
                          NVPFLOW_LIBRARY=nvpflow.library_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), nvpflow.library_path)

    def test_override_that_does_not_fit(self):
        # a shared library that is not libnvpflow: refused, and said why
        libm = ctypes.util.find_library("m")
        if not libm:
            self.skipTest("no libm to load")
        r = self.run_copy("import nvpflow", NVPFLOW_LIBRARY=libm)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot use the library named by NVPFLOW_LIBRARY",
                      r.stderr)
        self.assertIn("lacks nvp_", r.stderr)


class InCheckout(unittest.TestCase):
    def test_checkout_build_comes_first(self):
        if os.environ.get("NVPFLOW_LIBRARY"):
            self.skipTest("NVPFLOW_LIBRARY is set")
        self.assertEqual(nvpflow.library_path,
                         os.path.join(ROOT, "lib", _lib.SONAME))

    def test_pyproject_version_is_the_library_version(self):
        with open(os.path.join(PKG_PARENT, "pyproject.toml")) as f:
            text = f.read()
        m = re.search(r'^version = "([^"]+)"$', text, re.M)
        self.assertIsNotNone(m, "no version in pyproject.toml")
        self.assertEqual(m.group(1), header_version(),
                         "examples/python/pyproject.toml and "
                         "include/nvpflow.h disagree")


if __name__ == "__main__":
    unittest.main()
