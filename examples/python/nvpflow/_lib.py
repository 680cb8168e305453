# SPDX-License-Identifier: MIT
"""Loading libnvpflow and declaring the C prototypes.

Every C function the package calls is declared here with its argtypes and
restype, so that ctypes converts (and checks) every argument and never
truncates a size_t or a pointer to an int.

Lookup order for the shared library:
  1. the path in the environment variable NVPFLOW_LIBRARY (no fallback:
     when it is set and cannot be loaded, the import fails);
  2. the repository's build, lib/libnvpflow.so, three directories above
     this package (examples/python/nvpflow -> repo root);
  3. ctypes.util.find_library("nvpflow"), then the SONAME libnvpflow.so.0.
"""
import ctypes
import ctypes.util
import os

from ctypes import (POINTER, c_char_p, c_double, c_float, c_int, c_size_t,
                    c_uint, c_uint64, c_void_p)

# Status codes (values pinned by the C header).
OK = 0
EINVAL = -1
EDIM = -2
ENOMEM = -3
EOVERFLOW = -4
ENONFINITE = -5
EIO = -6
EFORMAT = -7
EVERSION = -8
ETHREAD = -9
EBUFSIZE = -10

INIT_ZERO_OUTPUT = 1
MAX_THREADS = 1024

# The binary interface these bindings were written against (SONAME major).
ABI_MAJOR = 0

_ENV = "NVPFLOW_LIBRARY"


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    repo_lib = os.path.normpath(os.path.join(here, "..", "..", "..", "lib",
                                             "libnvpflow.so"))
    found = []
    if os.path.exists(repo_lib):
        found.append(repo_lib)
    name = ctypes.util.find_library("nvpflow")
    if name:
        found.append(name)
    found.append("libnvpflow.so.0")
    return repo_lib, found


def _load():
    path = os.environ.get(_ENV)
    if path:
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            raise ImportError(
                "nvpflow: cannot load the library named by %s=%r: %s"
                % (_ENV, path, e)) from None
    repo_lib, candidates = _candidates()
    errors = []
    for cand in candidates:
        try:
            return ctypes.CDLL(cand), cand
        except OSError as e:
            errors.append("  %s: %s" % (cand, e))
    raise ImportError(
        "nvpflow: libnvpflow not found.  Build it with `make` in the "
        "repository root (expected at %s), install it, or set %s to the "
        "path of libnvpflow.so.\nTried:\n%s"
        % (repo_lib, _ENV, "\n".join(errors)))


lib, path = _load()

_P = c_void_p            # opaque handle (nvp_chain * etc.)
_PP = POINTER(c_void_p)  # handle out-parameter (nvp_chain **)
_F = POINTER(c_float)    # float array
_SZ = POINTER(c_size_t)

# name: (restype, argtypes)
_PROTOTYPES = {
    # version and errors
    "nvp_version_number": (c_uint, []),
    "nvp_version_string": (c_char_p, []),
    "nvp_strerror": (c_char_p, [c_int]),
    "nvp_errmsg": (c_char_p, []),
    # rng
    "nvp_rng_create": (c_int, [_PP, c_uint64, c_void_p]),
    "nvp_rng_free": (None, [_P]),
    "nvp_rng_seed": (c_int, [_P, c_uint64]),
    "nvp_rng_uniform": (c_int, [_P, c_size_t, _F]),
    "nvp_rng_normal": (c_int, [_P, c_size_t, _F]),
    "nvp_rng_index": (c_int, [_P, c_size_t, c_uint64, POINTER(c_uint64)]),
    "nvp_rng_errmsg": (c_char_p, [_P]),
    # chain
    "nvp_chain_create_alternating": (
        c_int, [_PP, c_size_t, c_size_t, c_size_t, _SZ, c_uint, _P,
                c_void_p]),
    "nvp_chain_free": (None, [_P]),
    "nvp_chain_dim": (c_size_t, [_P]),
    "nvp_chain_num_layers": (c_size_t, [_P]),
    "nvp_chain_num_params": (c_size_t, [_P]),
    "nvp_chain_params": (_F, [_P]),
    "nvp_chain_get_params": (c_int, [_P, _F, c_size_t]),
    "nvp_chain_set_params": (c_int, [_P, _F, c_size_t]),
    "nvp_chain_layer": (_P, [_P, c_size_t, _SZ]),
    "nvp_chain_sample": (c_int, [_P, _P, c_size_t, _F, _F]),
    "nvp_chain_log_prob": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_chain_forward": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_inverse": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_forward_trace": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_chain_nll_grad": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_set_log_scale_clamp": (c_int, [_P, c_float]),
    "nvp_chain_errmsg": (c_char_p, [_P]),
    "nvp_chain_set_threads": (c_int, [_P, c_size_t]),
    "nvp_chain_threads": (c_size_t, [_P]),
    "nvp_chain_train_step": (
        c_int, [_P, _P, _P, c_size_t, _F, c_size_t, _F]),
    # coupling (read-only queries on a chain's layers)
    "nvp_coupling_log_scale_clamp": (c_float, [_P]),
    # saving and loading
    "nvp_chain_save_buffer": (c_int, [_P, _P, c_void_p, c_size_t, _SZ]),
    "nvp_chain_save_file": (c_int, [_P, _P, c_char_p]),
    "nvp_chain_load_buffer": (c_int, [_PP, _PP, c_void_p, c_size_t,
                                      c_void_p]),
    "nvp_chain_load_file": (c_int, [_PP, _PP, c_char_p, c_void_p]),
    # adam
    "nvp_adam_create": (c_int, [_PP, c_size_t, c_void_p]),
    "nvp_adam_free": (None, [_P]),
    "nvp_adam_set_lr": (c_int, [_P, c_float]),
    "nvp_adam_set_betas": (c_int, [_P, c_float, c_float]),
    "nvp_adam_set_eps": (c_int, [_P, c_float]),
    "nvp_adam_lr": (c_float, [_P]),
    "nvp_adam_num_params": (c_size_t, [_P]),
    "nvp_adam_steps": (c_uint64, [_P]),
    "nvp_adam_reset": (c_int, [_P]),
    "nvp_adam_step": (c_int, [_P, _F, _F, c_size_t]),
    "nvp_adam_set_average": (c_int, [_P, c_float, _F, c_size_t]),
    "nvp_adam_average_decay": (c_float, [_P]),
    "nvp_adam_get_average": (c_int, [_P, _F, c_size_t]),
    "nvp_adam_set_clip_norm": (c_int, [_P, c_float]),
    "nvp_adam_clip_norm": (c_float, [_P]),
    "nvp_adam_last_grad_norm": (c_float, [_P]),
    "nvp_adam_errmsg": (c_char_p, [_P]),
    "nvp_adam_save_buffer": (c_int, [_P, _P, c_void_p, c_size_t, _SZ]),
    "nvp_adam_save_file": (c_int, [_P, _P, c_char_p]),
    "nvp_adam_load_buffer": (c_int, [_PP, _PP, c_void_p, c_size_t,
                                     c_void_p]),
    "nvp_adam_load_file": (c_int, [_PP, _PP, c_char_p, c_void_p]),
    # data and scaler
    "nvp_two_moons": (c_int, [_P, c_size_t, c_float, _F, POINTER(c_int)]),
    "nvp_scaler_create": (c_int, [_PP, c_size_t, c_void_p]),
    "nvp_scaler_free": (None, [_P]),
    "nvp_scaler_dim": (c_size_t, [_P]),
    "nvp_scaler_fit": (c_int, [_P, c_size_t, _F]),
    "nvp_scaler_transform": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_scaler_inverse_transform": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_scaler_get": (c_int, [_P, _F, _F, c_size_t]),
    "nvp_scaler_set": (c_int, [_P, _F, _F, c_size_t]),
    "nvp_scaler_log_det": (c_double, [_P]),
    "nvp_scaler_errmsg": (c_char_p, [_P]),
}


def _declare():
    missing = []
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise ImportError("nvpflow: %s lacks %s (too old a build?)"
                          % (path, ", ".join(missing)))
    major = lib.nvp_version_number() // 10000
    if major != ABI_MAJOR:
        raise ImportError("nvpflow: %s is version %s; these bindings need "
                          "%d.x" % (path, lib.nvp_version_string().decode(),
                                    ABI_MAJOR))


_declare()


def decode(s):
    """A library string (bytes or None) as str."""
    if not s:
        return ""
    return s.decode("utf-8", "replace")
