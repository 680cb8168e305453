# SPDX-License-Identifier: MIT
"""Loading libnvpflow and declaring the C prototypes.

Every C function of nvpflow.h is declared here with its argtypes and
restype (the package's tests compare them with the header), so that ctypes
converts (and checks) every argument and never truncates a size_t or a
pointer to an int.

Where the shared library (libnvpflow.so.1: the binary interface these
bindings were written for) is looked for, in order:
  1. NVPFLOW_LIBRARY, the path of the library: an override, used as given
     (when it is set and that file cannot be used, the import fails);
  2. when the package is imported from a source checkout
     (examples/python/nvpflow), that checkout's build, lib/, so that the
     bindings and the library come from the same tree;
  3. the dynamic linker's own search: LD_LIBRARY_PATH, the ldconfig cache
     (where `make install` as root puts it), /lib and /usr/lib;
  4. ctypes.util.find_library("nvpflow");
  5. the libdir of pkg-config's nvpflow (PKG_CONFIG_PATH is honoured), which
     is how an install into any prefix is found.
A library that loads but lacks a function or has another major version is
passed over (the next place is tried).  When nothing fits, ImportError
lists every place with the reason it did not.
"""
import ctypes
import ctypes.util
import os
import subprocess

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
EUNSUPPORTED = -11
EBUSY = -12

INIT_ZERO_OUTPUT = 1
# A coupling's affine step (nvp_coupling_set_affine_form).
AFFINE_EXP = 0
AFFINE_SIGMOID = 1
MAX_THREADS = 1024

# Kernel levels (nvp_*_set_kernels), and the names the bindings accept.
KERNELS_AUTO = 0
KERNELS_PORTABLE = 1
KERNELS_AVX2 = 2
KERNELS_AVX512 = 3
KERNEL_NAMES = {"auto": KERNELS_AUTO, "portable": KERNELS_PORTABLE,
                "avx2": KERNELS_AVX2, "avx512": KERNELS_AVX512}

# Precisions of the conditioners' products (nvp_chain_set_precision).
PRECISION_FP32 = 0
PRECISION_BF16 = 1
PRECISION_NAMES = {"fp32": PRECISION_FP32, "bf16": PRECISION_BF16}

# The binary interface these bindings were written against (SONAME major),
# and the first release that has it (NVP_VERSION_NUMBER).
ABI_MAJOR = 1
FIRST_RELEASE = 400

_ENV = "NVPFLOW_LIBRARY"
SONAME = "libnvpflow.so.%d" % ABI_MAJOR


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", c_char_p), ("dli_fbase", c_void_p),
                ("dli_sname", c_char_p), ("dli_saddr", c_void_p)]


def _file_of(handle, name):
    """The file a loaded library came from (dladdr on one of its
    functions), or `name` when the platform cannot tell."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [c_void_p, POINTER(_DlInfo)]
        dladdr.restype = c_int
        info = _DlInfo()
        addr = ctypes.cast(handle.nvp_version_number, c_void_p)
        if dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.abspath(os.fsdecode(info.dli_fname))
    except (OSError, AttributeError, ValueError):
        pass
    return name


def _checkout_root():
    """The root of the source checkout this package sits in
    (ROOT/examples/python/nvpflow), or None for an installed package."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", "..", ".."))
    if (os.path.basename(os.path.dirname(here)) == "python"
            and os.path.isfile(os.path.join(root, "include", "nvpflow.h"))
            and os.path.isfile(os.path.join(root, "Makefile"))):
        return root
    return None


def _pkg_config_libdir():
    """(libdir of pkg-config's nvpflow or None, why not)."""
    try:
        r = subprocess.run(["pkg-config", "--variable=libdir", "nvpflow"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=30)
    except OSError as e:
        return None, "pkg-config cannot run (%s)" % e.strerror
    except subprocess.TimeoutExpired:
        return None, "pkg-config did not answer"
    libdir = r.stdout.decode("utf-8", "replace").strip()
    if r.returncode != 0 or not libdir:
        why = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return None, "%s (PKG_CONFIG_PATH=%s)" % (
            why[0] if why else "nvpflow not found",
            os.environ.get("PKG_CONFIG_PATH", "unset"))
    # pkg-config escapes spaces in variables.
    return libdir.replace("\\ ", " "), None


def _try(name):
    """(ctypes library, None) when `name` loads and fits these bindings,
    else (None, why not)."""
    try:
        handle = ctypes.CDLL(name)
    except OSError as e:
        return None, str(e)
    missing = [f for f in _PROTOTYPES if not hasattr(handle, f)]
    if missing:
        return None, "loaded, but lacks %s (too old a build?)" % (
            ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else ""))
    number = handle.nvp_version_number
    number.restype, number.argtypes = c_uint, []
    # Releases from FIRST_RELEASE on keep this interface until the SONAME
    # changes (the library's file name says which one it has).
    v = number()
    if v < FIRST_RELEASE:
        return None, "loaded, but it is release %d.%d.%d; these bindings " \
            "need %d.%d.0 or later" % (v // 10000, v // 100 % 100, v % 100,
                                       FIRST_RELEASE // 10000,
                                       FIRST_RELEASE // 100 % 100)
    return handle, None


def _load():
    """(library, path of its file)."""
    override = os.environ.get(_ENV)
    if override:
        handle, why = _try(override)
        if handle is None:
            raise ImportError("nvpflow: cannot use the library named by "
                              "%s=%r: %s" % (_ENV, override, why))
        return handle, _file_of(handle, override)

    tried = ["%s: not set" % _ENV]
    seen = set()

    def attempt(where, name):
        if name in seen:
            return None
        seen.add(name)
        handle, why = _try(name)
        if handle is None:
            tried.append("%s: %s" % (where, why))
            return None
        return handle, _file_of(handle, name)

    root = _checkout_root()
    if root is not None:
        built = os.path.join(root, "lib", SONAME)
        if os.path.exists(built):
            found = attempt("the source checkout's build", built)
            if found:
                return found
        else:
            tried.append("the source checkout's build: no %s (run `make` in "
                         "%s)" % (built, root))
    found = attempt("the dynamic linker's search path (LD_LIBRARY_PATH, the "
                    "ldconfig cache, /lib, /usr/lib)", SONAME)
    if found:
        return found
    name = ctypes.util.find_library("nvpflow")
    if name:
        found = attempt("ctypes.util.find_library('nvpflow') = %s" % name,
                        name)
        if found:
            return found
    else:
        tried.append("ctypes.util.find_library('nvpflow'): nothing found")
    libdir, why = _pkg_config_libdir()
    if libdir:
        found = attempt("pkg-config's libdir", os.path.join(libdir, SONAME))
        if found:
            return found
    else:
        tried.append("pkg-config --variable=libdir nvpflow: %s" % why)
    raise ImportError(
        "nvpflow: cannot find the libnvpflow C library (%s).  Looked in:\n"
        "  - %s\n"
        "Install it (`make install`; run as root into /usr/local it also "
        "runs ldconfig), point PKG_CONFIG_PATH at the lib/pkgconfig "
        "directory of its prefix, or set %s to the path of %s."
        % (SONAME, "\n  - ".join(tried), _ENV, SONAME))


_P = c_void_p            # opaque handle (nvp_chain * etc.)
_PP = POINTER(c_void_p)  # handle out-parameter (nvp_chain **)
_F = POINTER(c_float)    # float array
_SZ = POINTER(c_size_t)

# nvp_log_density_fn, the reverse-KL target's callback: (user, n, dim, y,
# log_p, dlogp_dy) -> 0 or an error code.  ctypes caches CFUNCTYPE types,
# so the tests can compare this with one built from the header's typedef.
LOG_DENSITY_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_size_t, c_size_t, _F,
                                  _F, _F)

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
    "nvp_chain_get_params": (c_int, [_P, c_size_t, _F]),
    "nvp_chain_set_params": (c_int, [_P, c_size_t, _F]),
    "nvp_chain_layer": (_P, [_P, c_size_t, _SZ]),
    "nvp_chain_init_from_data": (c_int, [_P, c_size_t, _F]),
    "nvp_chain_set_kernels": (c_int, [_P, c_int]),
    "nvp_chain_kernels": (c_int, [_P]),
    "nvp_chain_set_precision": (c_int, [_P, c_int]),
    "nvp_chain_precision": (c_int, [_P]),
    "nvp_precision_supported": (c_int, [c_int]),
    "nvp_chain_sample": (c_int, [_P, _P, c_size_t, _F, _F]),
    "nvp_chain_log_prob": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_chain_forward": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_inverse": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_forward_trace": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_chain_nll_grad": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_set_log_scale_clamp": (c_int, [_P, c_float]),
    "nvp_chain_errmsg": (c_char_p, [_P]),
    "nvp_chain_set_threads": (c_int, [_P, c_size_t]),
    "nvp_chain_set_column_names": (c_int, [_P, c_size_t,
                                           POINTER(c_void_p)]),
    "nvp_chain_column_name": (c_char_p, [_P, c_size_t]),
    "nvp_chain_threads": (c_size_t, [_P]),
    "nvp_chain_train_step": (
        c_int, [_P, _P, _P, c_size_t, _F, c_size_t, _F]),
    "nvp_chain_create": (c_int, [_PP, _P, c_size_t, POINTER(c_void_p),
                                 c_void_p]),
    "nvp_chain_create_from_layers": (c_int, [_PP, _P, c_size_t,
                                             POINTER(c_void_p), c_void_p]),
    # conditional densities p(y | c): the chain's _given calls and the
    # score
    "nvp_chain_create_conditional": (
        c_int, [_PP, c_size_t, c_size_t, c_size_t, c_size_t, _SZ, c_uint, _P,
                c_void_p]),
    "nvp_chain_context_dim": (c_size_t, [_P]),
    "nvp_chain_log_prob_given": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_sample_given": (c_int, [_P, _P, c_size_t, _F, _F, _F]),
    "nvp_chain_sample_given_one": (c_int, [_P, _P, c_size_t, _F, _F, _F]),
    "nvp_chain_forward_given": (c_int, [_P, c_size_t, _F, _F, _F, _F]),
    "nvp_chain_inverse_given": (c_int, [_P, c_size_t, _F, _F, _F, _F]),
    "nvp_chain_forward_trace_given": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_nll_grad_given": (c_int, [_P, c_size_t, _F, _F, _F, _F]),
    "nvp_chain_train_step_given": (
        c_int, [_P, _P, _P, c_size_t, _F, _F, c_size_t, _F]),
    "nvp_chain_init_from_data_given": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_chain_score": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_chain_score_given": (c_int, [_P, c_size_t, _F, _F, _F, _F, _F]),
    # the forward direction's vector-Jacobian product and reverse-KL
    # (variational) training
    "nvp_chain_forward_backward": (c_int, [_P, c_size_t, _F, _F, _F, _F,
                                           _F]),
    "nvp_chain_forward_backward_given": (
        c_int, [_P, c_size_t, _F, _F, _F, _F, _F, _F, _F]),
    "nvp_layer_forward_backward": (c_int, [_P, c_size_t, _F, _F, _F, _F,
                                           _F]),
    "nvp_layer_forward_backward_given": (
        c_int, [_P, c_size_t, _F, _F, _F, _F, _F, _F, _F]),
    "nvp_chain_reverse_kl_grad": (
        c_int, [_P, _P, c_size_t, LOG_DENSITY_FN, c_void_p, _F, _F]),
    "nvp_chain_reverse_kl_step": (
        c_int, [_P, _P, _P, c_size_t, LOG_DENSITY_FN, c_void_p, _F]),
    "nvp_chain_reverse_kl_grad_given": (
        c_int, [_P, _P, c_size_t, _F, LOG_DENSITY_FN, c_void_p, _F, _F]),
    "nvp_chain_reverse_kl_step_given": (
        c_int, [_P, _P, _P, c_size_t, _F, LOG_DENSITY_FN, c_void_p, _F]),
    # base and coupling layers (building a chain layer by layer, and
    # read-only queries on a chain's layers)
    "nvp_base_create_normal": (c_int, [_PP, c_size_t, c_void_p]),
    "nvp_base_free": (None, [_P]),
    "nvp_base_dim": (c_size_t, [_P]),
    "nvp_base_sample": (c_int, [_P, _P, c_size_t, _F]),
    "nvp_base_log_prob": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_base_log_prob_grad": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_base_errmsg": (c_char_p, [_P]),
    "nvp_base_create_mixture": (c_int, [_PP, c_size_t, c_size_t, _F, _F, _F,
                                        c_void_p]),
    "nvp_base_fit_mixture": (c_int, [_PP, c_size_t, c_size_t, _F, c_size_t,
                                     _P, c_void_p]),
    "nvp_base_clone": (c_int, [_P, _PP, c_void_p]),
    "nvp_base_components": (c_size_t, [_P]),
    "nvp_base_kind": (c_int, [_P]),
    "nvp_chain_base": (_P, [_P]),
    "nvp_chain_set_base": (c_int, [_P, _P]),
    "nvp_coupling_create": (c_int, [_PP, c_size_t, c_void_p, c_size_t, _SZ,
                                    c_uint, _P, c_void_p]),
    "nvp_coupling_create_half": (c_int, [_PP, c_size_t, c_int, c_size_t,
                                         _SZ, c_uint, _P, c_void_p]),
    "nvp_coupling_create_conditional": (
        c_int, [_PP, c_size_t, c_size_t, c_void_p, c_size_t, _SZ, c_uint,
                _P, c_void_p]),
    "nvp_coupling_free": (None, [_P]),
    "nvp_coupling_dim": (c_size_t, [_P]),
    "nvp_coupling_num_params": (c_size_t, [_P]),
    "nvp_coupling_get_params": (c_int, [_P, c_size_t, _F]),
    "nvp_coupling_set_params": (c_int, [_P, c_size_t, _F]),
    "nvp_coupling_forward": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_coupling_inverse": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_coupling_inverse_backward": (c_int, [_P, c_size_t, _F, _F, _F, _F,
                                              _F]),
    "nvp_coupling_get_mask": (c_int, [_P, c_size_t, c_void_p]),
    "nvp_coupling_get_hidden": (c_int, [_P, c_size_t, _SZ, _SZ]),
    "nvp_coupling_log_scale_clamp": (c_float, [_P]),
    "nvp_coupling_set_log_scale_clamp": (c_int, [_P, c_float]),
    "nvp_coupling_set_affine_form": (c_int, [_P, c_int]),
    "nvp_coupling_affine_form": (c_int, [_P]),
    "nvp_coupling_set_kernels": (c_int, [_P, c_int]),
    "nvp_coupling_kernels": (c_int, [_P]),
    "nvp_coupling_errmsg": (c_char_p, [_P]),
    # layers of every kind
    "nvp_layer_create_permutation": (c_int, [_PP, c_size_t, _SZ,
                                             c_void_p]),
    "nvp_layer_create_random_permutation": (c_int, [_PP, c_size_t, _P,
                                                    c_void_p]),
    "nvp_layer_create_actnorm": (c_int, [_PP, c_size_t, c_void_p]),
    "nvp_layer_create_linear": (c_int, [_PP, c_size_t, c_void_p]),
    "nvp_coupling_as_layer": (_P, [_P]),
    "nvp_layer_as_coupling": (_P, [_P]),
    "nvp_layer_free": (None, [_P]),
    "nvp_layer_kind": (c_char_p, [_P]),
    "nvp_layer_dim": (c_size_t, [_P]),
    "nvp_layer_num_params": (c_size_t, [_P]),
    "nvp_layer_get_params": (c_int, [_P, c_size_t, _F]),
    "nvp_layer_set_params": (c_int, [_P, c_size_t, _F]),
    "nvp_layer_forward": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_layer_inverse": (c_int, [_P, c_size_t, _F, _F, _F]),
    "nvp_layer_inverse_backward": (c_int, [_P, c_size_t, _F, _F, _F, _F,
                                           _F]),
    "nvp_layer_context_dim": (c_size_t, [_P]),
    "nvp_layer_forward_given": (c_int, [_P, c_size_t, _F, _F, _F, _F]),
    "nvp_layer_inverse_given": (c_int, [_P, c_size_t, _F, _F, _F, _F]),
    "nvp_layer_inverse_backward_given": (
        c_int, [_P, c_size_t, _F, _F, _F, _F, _F, _F, _F]),
    "nvp_layer_errmsg": (c_char_p, [_P]),
    "nvp_layer_set_kernels": (c_int, [_P, c_int]),
    "nvp_layer_kernels": (c_int, [_P]),
    # saving and loading
    "nvp_chain_save_buffer": (c_int, [_P, _P, c_size_t, c_void_p, _SZ]),
    "nvp_chain_save_file": (c_int, [_P, _P, c_char_p]),
    "nvp_chain_load_buffer": (c_int, [_PP, _PP, c_size_t, c_void_p,
                                      c_void_p]),
    "nvp_chain_load_file": (c_int, [_PP, _PP, c_char_p, c_void_p]),
    # adam
    "nvp_adam_create": (c_int, [_PP, c_size_t, c_void_p]),
    "nvp_adam_free": (None, [_P]),
    "nvp_adam_set_lr": (c_int, [_P, c_float]),
    "nvp_adam_set_betas": (c_int, [_P, c_float, c_float]),
    "nvp_adam_set_eps": (c_int, [_P, c_float]),
    "nvp_adam_lr": (c_float, [_P]),
    "nvp_adam_beta1": (c_float, [_P]),
    "nvp_adam_beta2": (c_float, [_P]),
    "nvp_adam_eps": (c_float, [_P]),
    "nvp_adam_set_kernels": (c_int, [_P, c_int]),
    "nvp_adam_kernels": (c_int, [_P]),
    "nvp_adam_num_params": (c_size_t, [_P]),
    "nvp_adam_num_steps": (c_uint64, [_P]),
    "nvp_adam_reset": (c_int, [_P]),
    "nvp_adam_step": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_adam_set_average": (c_int, [_P, c_float, c_size_t, _F]),
    "nvp_adam_average_decay": (c_float, [_P]),
    "nvp_adam_get_average": (c_int, [_P, c_size_t, _F]),
    "nvp_adam_set_clip_norm": (c_int, [_P, c_float]),
    "nvp_adam_set_weight_decay": (c_int, [_P, c_float]),
    "nvp_adam_weight_decay": (c_float, [_P]),
    "nvp_adam_clip_norm": (c_float, [_P]),
    "nvp_adam_last_grad_norm": (c_float, [_P]),
    "nvp_adam_errmsg": (c_char_p, [_P]),
    "nvp_adam_save_buffer": (c_int, [_P, _P, c_size_t, c_void_p, _SZ]),
    "nvp_adam_save_file": (c_int, [_P, _P, c_char_p]),
    "nvp_adam_load_buffer": (c_int, [_PP, _PP, c_size_t, c_void_p,
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
    "nvp_scaler_get": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_scaler_set": (c_int, [_P, c_size_t, _F, _F]),
    "nvp_scaler_log_det": (c_double, [_P]),
    "nvp_scaler_errmsg": (c_char_p, [_P]),
    "nvp_scaler_set_column_names": (c_int, [_P, c_size_t,
                                            POINTER(c_void_p)]),
    "nvp_scaler_column_name": (c_char_p, [_P, c_size_t]),
}


def _declare():
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


lib, path = _load()
_declare()


def precision_arg(precision):
    """A precision for nvp_chain_set_precision: PRECISION_FP32,
    PRECISION_BF16 (an unknown number is left for the library to refuse)
    or its name ("fp32", "bf16")."""
    if isinstance(precision, str):
        try:
            return PRECISION_NAMES[precision.lower()]
        except KeyError:
            from . import errors
            raise errors.InvalidArgument(
                "unknown precision %r: use fp32, bf16 or a PRECISION_* "
                "constant" % precision) from None
    return int(precision)


def kernels_arg(kernels):
    """A kernel level for nvp_*_set_kernels: one of the KERNELS_*
    constants (an unknown number is left for the library to refuse) or its
    name ("auto", "portable", "avx2", "avx512")."""
    if isinstance(kernels, str):
        try:
            return KERNEL_NAMES[kernels.lower()]
        except KeyError:
            from . import errors
            raise errors.InvalidArgument(
                "unknown kernels %r: use one of %s or a KERNELS_* constant"
                % (kernels, ", ".join(sorted(KERNEL_NAMES)))) from None
    try:
        v = kernels.__index__()
    except AttributeError:
        raise TypeError("kernels must be a KERNELS_* constant or a name, "
                        "not %s" % type(kernels).__name__) from None
    if not -2 ** 31 <= v < 2 ** 31:
        from . import errors
        raise errors.InvalidArgument("unknown kernels %d" % v)
    return v


def decode(s):
    """A library string (bytes or None) as str."""
    if not s:
        return ""
    return s.decode("utf-8", "replace")
