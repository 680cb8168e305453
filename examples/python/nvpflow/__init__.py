# SPDX-License-Identifier: MIT
"""nvpflow: Python bindings (ctypes, standard library only) for libnvpflow,
Real-NVP normalizing flows in C.

    import nvpflow
    xy, labels = nvpflow.two_moons(2000, 0.05, nvpflow.Rng(1))
    with nvpflow.Scaler(2) as sc, \\
         nvpflow.Chain.alternating(2, layers=4, hidden=(64, 64), seed=0) as flow, \\
         nvpflow.Adam(flow, lr=1e-3) as opt, nvpflow.Rng(2) as rng:
        z = sc.fit_transform(xy)
        for step in range(1000):
            loss = flow.train_step(opt, rng, z, 100)
        flow.save("moons.nvp", scaler=sc)

The library is found through NVPFLOW_LIBRARY (an override), the source
checkout's lib/ when imported from one, the dynamic linker's search path
(LD_LIBRARY_PATH, the ldconfig cache), ctypes.util.find_library, then the
libdir of pkg-config's nvpflow (see _lib.py); the ImportError says where it
looked.  With numpy installed, arrays are numpy float32 and passed without
copies; without it, lists.  nvpflow.pytorch converts PyTorch state dicts
(it imports torch only when asked for tensors).
"""
from . import errors
from ._arrays import have_numpy
from ._lib import path as library_path
from .base import Base, BaseView
from .data import Scaler, two_moons
from .errors import (BufferSize, Busy, ClosedError, DimensionError, FileError,
                     FormatError, InvalidArgument, NonFinite, NvpError,
                     OutOfMemory, Overflow, ThreadError, Unsupported,
                     VersionError)
from .flow import Chain, train_step
from .layers import (ActNorm, Coupling, Layer, LayerView, Linear,
                     Permutation)
from .optim import Adam
from .rng import Rng
from . import _lib as _l
from ._lib import (AFFINE_EXP, AFFINE_SIGMOID, KERNELS_AUTO, KERNELS_AVX2,
                   KERNELS_AVX512, KERNELS_PORTABLE, PRECISION_BF16,
                   PRECISION_FP32)


def version():
    """Version string of the loaded library, e.g. "0.6.0"."""
    return _l.decode(_l.lib.nvp_version_string())


def version_number():
    """Version of the loaded library as major * 10000 + minor * 100 +
    patch."""
    return _l.lib.nvp_version_number()


def precision_supported(precision):
    """Whether this CPU and library run the precision (PRECISION_FP32,
    PRECISION_BF16, or "fp32", "bf16")."""
    return bool(_l.lib.nvp_precision_supported(_l.precision_arg(precision)))


def strerror(code):
    """The library's short description of a status code."""
    return _l.decode(_l.lib.nvp_strerror(int(code)))


__version__ = version()

__all__ = [
    "AFFINE_EXP", "AFFINE_SIGMOID", "ActNorm", "Adam", "Base", "BaseView",
    "BufferSize", "Busy",
    "Chain", "ClosedError", "Coupling",
    "DimensionError", "FileError", "FormatError", "InvalidArgument",
    "KERNELS_AUTO", "KERNELS_AVX2", "KERNELS_AVX512", "KERNELS_PORTABLE",
    "Layer", "LayerView", "Linear", "NonFinite", "NvpError", "OutOfMemory",
    "Overflow", "PRECISION_BF16", "PRECISION_FP32", "Permutation", "Rng",
    "Scaler", "ThreadError",
    "Unsupported", "VersionError", "errors", "have_numpy", "library_path",
    "precision_supported", "strerror", "train_step", "two_moons", "version",
    "version_number",
]
