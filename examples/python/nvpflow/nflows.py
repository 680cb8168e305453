# SPDX-License-Identifier: MIT
"""Converting between an nflows Flow's state dict and an nvpflow Chain.

nflows (github.com/bayesiains/nflows) builds a flow as

    Flow(CompositeTransform([t_0, t_1, ...]), StandardNormal([dim]))

whose state dict holds, for transform k, entries "_transform._transforms.
<k>.<name>".  This module reads and writes three kinds of transform:

  AffineCouplingTransform with its default scale activation
      sigmoid(h + 2) + 1e-3: entries identity_features and
      transform_features (index buffers: the mask), and the Linear layers
      of its transform_net ("transform_net.<path>.weight" / ".bias"),
      applied in module-path order with a ReLU between them and none after
      the last; the net reads the identity features in increasing order
      and puts out the shifts, then the unconstrained scales, of the
      transform features.  It becomes a coupling of the library's sigmoid
      form (nvpflow.AFFINE_SIGMOID: nvp_coupling_set_affine_form), which
      computes exactly that.
  Permutation, RandomPermutation, ReversePermutation: entry _permutation.
  ActNorm: entries log_scale, shift (and the initialized flag).

nflows' forward direction is data to noise and applies t_0 first; the
library's layers run base to data, layer 0 first, so transform k is layer
K - 1 - k.  Conversions are exact up to float32 rounding: an nflows
permutation p is the library's argsort(p); an ActNorm's (log_scale, shift)
is the library's actnorm with s = -log_scale and b = -shift * exp(s).

What does not fit is refused with a ValueError naming the entry: a
ResidualNet transform net (nflows' SimpleRealNVP: its residual blocks are
not a plain MLP), a transform net with a context, BatchNorm, splines and
other transforms.  to_state_dict writes each coupling's net as
"transform_net.<2i>" for its i-th Linear layer (an nn.Sequential of
Linear and ReLU); pass linear_path for other names.
"""
import array
import collections
import math
import re

from . import _lib, errors
from .flow import Chain
from .layers import ActNorm, Coupling, Permutation

PREFIX = "_transform._transforms."
_KEY = re.compile(r"^(\d+)\.(.+)$")
_NET = re.compile(r"^transform_net\.(.+)\.(weight|bias)$")


def _path_key(path):
    """Sort module paths naturally: 2 before 10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p)
            for p in path.split(".")]


def _flat(value, key):
    """A tensor, numpy array or nested list as (shape, flat float list)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        return (), [value]
    if value and isinstance(value[0], (list, tuple)):
        width = len(value[0])
        if any(len(r) != width for r in value):
            raise ValueError("%s is not a matrix" % key)
        return (len(value), width), [v for r in value for v in r]
    return (len(value),), list(value)


def _transforms(state_dict, prefix):
    """{k: {name: (key, value)}} for every transform under prefix."""
    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        state_dict = state_dict.state_dict()
    found = collections.defaultdict(dict)
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue  # the distribution's buffers, an embedding net, ...
        m = _KEY.match(key[len(prefix):])
        if not m:
            raise ValueError("unexpected state-dict entry %r" % key)
        found[int(m.group(1))][m.group(2)] = (key, value)
    if not found:
        raise ValueError("no transform under prefix %r" % prefix)
    n = max(found) + 1
    missing = [k for k in range(n) if k not in found]
    if missing:
        raise ValueError("transforms %s are missing (a transform without "
                         "parameters or buffers cannot be converted)"
                         % missing)
    return [found[k] for k in range(n)]


def _coupling(entries, k, prefix):
    """(mask, hidden widths, flat parameters) of an affine coupling."""
    _, ident = _flat(entries["identity_features"][1], "identity_features")
    _, trans = _flat(entries["transform_features"][1], "transform_features")
    ident = [int(v) for v in ident]
    trans = [int(v) for v in trans]
    dim = len(ident) + len(trans)
    if sorted(ident + trans) != list(range(dim)) or not ident or not trans:
        raise ValueError("%s%d: identity_features and transform_features do "
                         "not split 0..%d" % (prefix, k, dim - 1))
    # nflows builds them in increasing order and its net reads them in
    # that order; the library's conditioner reads x_a increasing.
    if ident != sorted(ident) or trans != sorted(trans):
        raise ValueError("%s%d: identity_features or transform_features is "
                         "not in increasing order" % (prefix, k))
    mask = [0] * dim
    for i in ident:
        mask[i] = 1  # the library's 1: passed through, conditioned on
    dense = collections.defaultdict(dict)
    for name, (key, value) in entries.items():
        if name in ("identity_features", "transform_features"):
            continue
        if name.startswith("transform_net.initial_layer") or \
                name.startswith("transform_net.blocks."):
            raise ValueError(
                "%s: a ResidualNet transform net (as in nflows' "
                "SimpleRealNVP) is not a plain MLP; the library's "
                "conditioner cannot hold it" % key)
        if name.startswith("transform_net.context_layer") or \
                "context" in name:
            raise ValueError("%s: a transform net with a context is not "
                             "supported" % key)
        m = _NET.match(name)
        if not m:
            raise ValueError("%s: unexpected entry of an affine coupling "
                             "(expected transform_net Linear weights and "
                             "biases)" % key)
        dense[m.group(1)][m.group(2)] = (key, value)
    if not dense:
        raise ValueError("%s%d: the coupling's transform_net holds no "
                         "Linear layer" % (prefix, k))
    flat = []
    hidden = []
    fan_in = len(ident)
    paths = sorted(dense, key=_path_key)
    for j, path in enumerate(paths):
        for part in ("weight", "bias"):
            if part not in dense[path]:
                raise ValueError("%s%d.transform_net.%s.%s is missing"
                                 % (prefix, k, path, part))
        wkey, w = dense[path]["weight"]
        bkey, b = dense[path]["bias"]
        shape, wv = _flat(w, wkey)
        _, bv = _flat(b, bkey)
        if len(shape) != 2 or shape[1] != fan_in or len(bv) != shape[0]:
            raise ValueError("%s: shape %s, expected (out, %d) with a bias "
                             "of out values" % (wkey, shape, fan_in))
        out = shape[0]
        if j == len(paths) - 1 and out != 2 * len(trans):
            raise ValueError("%s: %d outputs, expected %d (shift and scale "
                             "of %d features)"
                             % (wkey, out, 2 * len(trans), len(trans)))
        if j < len(paths) - 1:
            hidden.append(out)
        # PyTorch keeps W as out x in; the library as in x out.
        for i in range(fan_in):
            flat.extend(wv[o * fan_in + i] for o in range(out))
        flat.extend(bv)
        fan_in = out
    return mask, hidden, flat


def _check_finite(values, what):
    for v in values:
        if not math.isfinite(v):
            raise errors.NonFinite("%s holds NaN or an infinity" % what,
                                   _lib.ENONFINITE)


def from_state_dict(state_dict, prefix=PREFIX):
    """A new Chain computing the nflows Flow whose state dict (or module:
    its state_dict() is used) is given; see the module's documentation for
    what converts.  ValueError names an entry that does not fit;
    nvpflow.NonFinite for NaN or infinite values."""
    transforms = _transforms(state_dict, prefix)
    layers = []
    dim = None
    try:
        for k, entries in enumerate(transforms):
            names = set(entries)
            if "identity_features" in names:
                mask, hidden, flat = _coupling(entries, k, prefix)
                _check_finite(flat, "%s%d" % (prefix, k))
                layer = Coupling(len(mask), mask=mask, hidden=tuple(hidden),
                                 seed=0)
                layer.set_affine_form(_lib.AFFINE_SIGMOID)
                layers.append(layer)
                layer.set_params(array.array("f", flat))
            elif names == {"_permutation"}:
                key, value = entries["_permutation"]
                _, p = _flat(value, key)
                p = [int(v) for v in p]
                if sorted(p) != list(range(len(p))):
                    raise ValueError("%s is not a permutation" % key)
                inverse = [0] * len(p)
                for i, v in enumerate(p):
                    inverse[v] = i
                layers.append(Permutation(perm=inverse))
            elif names - {"initialized"} == {"log_scale", "shift"}:
                _, ls = _flat(entries["log_scale"][1], "log_scale")
                _, sh = _flat(entries["shift"][1], "shift")
                if len(ls) != len(sh):
                    raise ValueError("%s%d: log_scale and shift differ in "
                                     "length" % (prefix, k))
                _check_finite(ls + sh, "%s%d" % (prefix, k))
                s = [-v for v in ls]
                b = [-h * math.exp(v) for h, v in zip(sh, s)]
                layer = ActNorm(len(ls))
                layers.append(layer)
                layer.set_params(array.array("f", s + b))
            else:
                raise ValueError(
                    "%s%d: a transform with entries %s is not an affine "
                    "coupling, a permutation or an ActNorm"
                    % (prefix, k, sorted(names)))
            if dim is None:
                dim = layers[-1].dim
            elif layers[-1].dim != dim:
                raise ValueError("%s%d: %d features, transform 0 has %d"
                                 % (prefix, k, layers[-1].dim, dim))
        # nflows' transform 0 acts first on data: the library's last layer
        return Chain.from_layers(reversed(layers))
    except BaseException:
        for layer in layers:
            layer.close()
        raise


def _sequential_path(i):
    return "transform_net.%d" % (2 * i)


def to_state_dict(chain, prefix=PREFIX, tensors=True,
                  linear_path=_sequential_path):
    """The nflows state dict of a chain of sigmoid-form couplings,
    permutations and ActNorm layers: an OrderedDict of float32 torch
    tensors (index buffers int64), or nested lists with tensors=False
    (torch is then not imported).  linear_path(i) names a coupling's i-th
    Linear layer (default "transform_net.<2i>").  ValueError for a layer
    nflows cannot express (an exp-form coupling, a linear layer) or a
    conditional chain."""
    if chain.base.kind != "normal":
        raise ValueError("the chain's base is a %s: an nflows state dict "
                         "holds the layers only, over a standard normal "
                         "base" % chain.base.kind)
    out = collections.OrderedDict()
    views = chain.layers
    n = len(views)
    for k, view in enumerate(reversed(views)):
        pre = "%s%d." % (prefix, k)
        layer_k = n - 1 - k
        kind = view.kind
        if kind == "affine coupling":
            if view.affine_form != _lib.AFFINE_SIGMOID:
                raise ValueError(
                    "layer %d is an exp-form coupling: nflows' "
                    "AffineCouplingTransform computes the sigmoid form only"
                    % layer_k)
            mask = list(view.mask)
            hidden = list(view.hidden)
            params = list(view.params)
            ident = [i for i, m in enumerate(mask) if m]
            trans = [i for i, m in enumerate(mask) if not m]
            out[pre + "identity_features"] = ("long", ident)
            out[pre + "transform_features"] = ("long", trans)
            fan_in, pos = len(ident), 0
            for i, fan_out in enumerate(hidden + [2 * len(trans)]):
                w = params[pos:pos + fan_in * fan_out]
                pos += fan_in * fan_out
                b = params[pos:pos + fan_out]
                pos += fan_out
                rows = [[w[r * fan_out + o] for r in range(fan_in)]
                        for o in range(fan_out)]
                out[pre + linear_path(i) + ".weight"] = ("float", rows)
                out[pre + linear_path(i) + ".bias"] = ("float", b)
                fan_in = fan_out
        elif kind == "permutation":
            perm = list(view.perm)
            p = [0] * len(perm)
            for i, v in enumerate(perm):
                p[v] = i
            out[pre + "_permutation"] = ("long", p)
        elif kind == "actnorm":
            params = list(view.params)
            d = len(params) // 2
            s, b = params[:d], params[d:]
            out[pre + "initialized"] = ("bool", True)
            out[pre + "log_scale"] = ("float", [-v for v in s])
            out[pre + "shift"] = ("float",
                                  [-bv * math.exp(-sv) for sv, bv in
                                   zip(s, b)])
        else:
            raise ValueError("layer %d is a %s layer, which nflows' "
                             "transforms this module writes cannot express"
                             % (layer_k, kind))
    if not tensors:
        return collections.OrderedDict(
            (key, value) for key, (_, value) in out.items())
    import torch
    dtypes = {"float": torch.float32, "long": torch.int64,
              "bool": torch.bool}
    return collections.OrderedDict(
        (key, torch.tensor(value, dtype=dtypes[kind]))
        for key, (kind, value) in out.items())
