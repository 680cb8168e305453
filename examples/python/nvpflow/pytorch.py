# SPDX-License-Identifier: MIT
"""Converting between a PyTorch Real-NVP state dict and an nvpflow Chain.

Train in PyTorch, deploy with the C library (or the other way round):

    import nvpflow, nvpflow.pytorch
    flow = nvpflow.pytorch.from_state_dict(layers.state_dict())
    flow.save("model.nvp")                      # for C, C++, the CLI, ...

    sd = nvpflow.pytorch.to_state_dict(nvpflow.Chain.load("model.nvp")[0])
    layers.load_state_dict(sd)

The PyTorch layout (tests/bench/torch_model.py in the libnvpflow sources):
a sequence (e.g. an nn.ModuleList) of K affine coupling layers whose
state-dict entries are

    "<prefix><k>.<path>.weight"   (out_features x in_features)
    "<prefix><k>.<path>.bias"     (out_features)

one pair per nn.Linear of layer k's conditioner, in the order of their
module paths ("net.0", "net.2", "net.4" for an nn.Sequential with ReLU
between the Linear layers).  The conditioner maps the layer's conditioning
dimensions x_a (in increasing index order) through the Linear layers with
a ReLU after every one but the last; its output holds first the shift,
then the log-scale of the transformed dimensions x_b (increasing order):
    y_b = x_b * exp(log_scale) + shift       (base -> data)
The base is N(0, I), and sampling applies layer 0 first.  This is exactly
the library's coupling (nvpflow.h), with weights transposed (PyTorch keeps
W as out x in, the library as in x out).

A state dict does not record the masks.  By default they are those of
torch_model.py's make_layers: layer k conditions on the first dim // 2
dimensions when k is even and on the others when k is odd (the library's
Chain.alternating).  Pass masks= for any other split.  The activations are
not recorded either: ReLU is assumed.  (nflows' AffineCouplingTransform
uses scale = sigmoid(h + 2) + 1e-3 instead of exp(h) and records its
masks: nvpflow.nflows converts that layout.)

The layout describes affine couplings only: a chain with layers of
other kinds (Permutation, ActNorm, Linear) is refused with a ValueError
that names the first such layer.

Values are stored as float32: a float32 state dict converts bitwise both
ways.  This module imports torch only inside to_state_dict(tensors=True);
from_state_dict takes torch tensors, numpy arrays or nested lists.
"""
import array
import collections
import ctypes
import math
import re
from ctypes import byref, c_size_t

from . import _lib, errors
from ._handle import out_handle
from .flow import Chain
from .rng import Rng

_KEY = re.compile(r"^(\d+)\.(.+)\.(weight|bias)$")


def alternating_masks(dim, num_layers):
    """The masks of torch_model.make_layers and Chain.alternating: layer k
    conditions on dims [0, dim // 2) when k is even, on [dim // 2, dim)
    when k is odd (1 = passed through and conditioned on)."""
    return [[int((i < dim // 2) != (k % 2 == 1)) for i in range(dim)]
            for k in range(num_layers)]


def _coupling_of(chain, k):
    """Layer k of `chain` as an nvp_coupling pointer; ValueError naming
    the kind when it is another kind of layer."""
    layer = _lib.lib.nvp_chain_layer(chain._h, k, None)
    c = _lib.lib.nvp_layer_as_coupling(layer)
    if not c:
        raise ValueError(
            "layer %d is a %s layer: the PyTorch layout holds affine "
            "couplings only, so a chain with layers of other kinds (%s) "
            "cannot be converted" % (
                k, _lib.decode(_lib.lib.nvp_layer_kind(layer)),
                ", ".join(sorted(set(chain.layer_kinds)
                                 - {"affine coupling"}))))
    return c


def layer_masks(chain):
    """The mask of every coupling layer of `chain` (lists of 0 and 1;
    1 = passed through and conditioned on).  ValueError for a chain with
    layers of other kinds."""
    dim = chain.dim
    out = []
    for k in range(chain.num_layers):
        layer = _coupling_of(chain, k)
        buf = (ctypes.c_ubyte * dim)()
        chain._check(_lib.lib.nvp_coupling_get_mask(
            layer, dim, ctypes.cast(buf, ctypes.c_void_p)))
        out.append(list(buf))
    return out


def _layer_hidden(chain, layer):
    n = c_size_t(0)
    chain._check(_lib.lib.nvp_coupling_get_hidden(layer, 0, None, byref(n)))
    widths = (c_size_t * max(n.value, 1))()
    chain._check(_lib.lib.nvp_coupling_get_hidden(layer, n.value, widths,
                                              byref(n)))
    return list(widths)[:n.value]


def _rows(value, key):
    """A 2-D tensor / array / nested list as a list of lists of floats."""
    if hasattr(value, "detach"):          # a torch tensor
        value = value.detach().cpu()
    if hasattr(value, "tolist"):          # torch, numpy
        value = value.tolist()
    try:
        rows = [[float(v) for v in row] for row in value]
    except TypeError:
        raise ValueError("%s: expected a 2-D array (out x in)" % key) \
            from None
    if not rows or any(len(r) != len(rows[0]) for r in rows) \
            or not rows[0]:
        raise ValueError("%s: expected a non-empty rectangular 2-D array"
                         % key)
    return rows


def _vector(value, key):
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist"):
        value = value.tolist()
    try:
        return [float(v) for v in value]
    except TypeError:
        raise ValueError("%s: expected a 1-D array" % key) from None


def _path_key(path):
    """Sort module paths naturally: net.2 before net.10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p)
            for p in path.split(".")]


def _parse(state_dict, prefix):
    """{layer index: [(path, weight rows, bias)]} in module-path order."""
    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        state_dict = state_dict.state_dict()
    layers = collections.defaultdict(dict)
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            raise ValueError("unexpected state-dict entry %r (not under "
                             "prefix %r)" % (key, prefix))
        m = _KEY.match(key[len(prefix):])
        if not m:
            raise ValueError("unexpected state-dict entry %r: expected "
                             "'%s<layer>.<module>.weight' or '.bias' of "
                             "nn.Linear layers only" % (key, prefix))
        k, path, kind = int(m.group(1)), m.group(2), m.group(3)
        layers[k].setdefault(path, {})[kind] = (key, value)
    if not layers:
        raise ValueError("the state dict holds no layers")
    n = max(layers) + 1
    missing = [k for k in range(n) if k not in layers]
    if missing:
        raise ValueError("layers %s are missing (the indices after the "
                         "prefix must run 0..%d)" % (missing, n - 1))
    out = []
    for k in range(n):
        dense = []
        for path in sorted(layers[k], key=_path_key):
            entry = layers[k][path]
            for kind in ("weight", "bias"):
                if kind not in entry:
                    raise ValueError("%s%d.%s.%s is missing"
                                     % (prefix, k, path, kind))
            wkey, w = entry["weight"]
            bkey, b = entry["bias"]
            rows = _rows(w, wkey)
            bias = _vector(b, bkey)
            if len(bias) != len(rows):
                raise ValueError("%s has %d values, %s has %d rows"
                                 % (bkey, len(bias), wkey, len(rows)))
            dense.append((wkey, rows, bias))
        out.append(dense)
    return out


def _check_mask(mask, dim, k):
    if len(mask) != dim or any(m not in (0, 1) for m in mask) \
            or 0 not in mask or 1 not in mask:
        raise ValueError("masks[%d]: need %d values, each 0 or 1, with at "
                         "least one of each" % (k, dim))


def from_state_dict(state_dict, masks=None, prefix=""):
    """A new Chain with the architecture and the parameters of a PyTorch
    Real-NVP state dict (or of a module: its state_dict() is used).

    masks: None for torch_model.make_layers' alternating half split, or
    one mask per layer (dim values; 1 = passed through and conditioned
    on).  prefix: the part of every key before the layer index (e.g.
    "layers." for a ModuleList held as self.layers).

    ValueError when an entry does not fit the layout (the message names
    it); nvpflow.NonFinite for NaN or infinite parameters."""
    dense = _parse(state_dict, prefix)
    n_layers = len(dense)
    if masks is None:
        first = dense[0]
        d_a, d_out = len(first[0][1][0]), len(first[-1][1])
        if d_out % 2:
            raise ValueError("%s: %d outputs, not shift and log-scale for "
                             "the same dimensions" % (first[-1][0], d_out))
        dim = d_a + d_out // 2
        if dim < 2:
            raise ValueError("the first layer describes %d dimensions"
                             % dim)
        masks = alternating_masks(dim, n_layers)
    else:
        masks = [[int(v) for v in m] for m in masks]
        if len(masks) != n_layers:
            raise ValueError("%d masks for %d layers"
                             % (len(masks), n_layers))
        dim = len(masks[0]) if masks else 0
    for k, mask in enumerate(masks):
        _check_mask(mask, dim, k)

    flat = array.array("f")
    specs = []
    for k, (mask, layer) in enumerate(zip(masks, dense)):
        fan_in = sum(mask)
        n_out = 2 * (dim - fan_in)
        hidden = []
        for j, (wkey, rows, bias) in enumerate(layer):
            if len(rows[0]) != fan_in:
                raise ValueError(
                    "%s: %d inputs, expected %d (%s)"
                    % (wkey, len(rows[0]), fan_in,
                       "the conditioning dimensions of mask %s" % mask
                       if j == 0 else "the previous layer's outputs"))
            if j == len(layer) - 1 and len(rows) != n_out:
                raise ValueError("%s: %d outputs, expected %d (shift and "
                                 "log-scale of %d dimensions)"
                                 % (wkey, len(rows), n_out, n_out // 2))
            if j < len(layer) - 1:
                hidden.append(len(rows))
            # PyTorch: out x in; the library: in x out, row-major.
            for i in range(fan_in):
                flat.extend(row[i] for row in rows)
            flat.extend(bias)
            fan_in = len(rows)
        specs.append((mask, hidden))
    for v in flat:
        if not math.isfinite(v):
            raise errors.NonFinite("the state dict holds NaN or infinite "
                                   "parameters", _lib.ENONFINITE)
    chain = _build(dim, specs)
    try:
        chain.set_params(flat)
    except BaseException:
        chain.close()
        raise
    return chain


def _build(dim, specs):
    """A Chain of couplings with the given (mask, hidden widths)."""
    lib = _lib.lib
    base = out_handle()
    errors.check(lib.nvp_base_create_normal(byref(base), dim, None))
    layers = []
    try:
        with Rng(0) as rng:   # initial values, replaced by set_params
            for mask, hidden in specs:
                m = (ctypes.c_ubyte * dim)(*mask)
                hp = (c_size_t * max(len(hidden), 1))(*hidden)
                out = out_handle()
                errors.check(lib.nvp_coupling_create(
                    byref(out), dim, ctypes.cast(m, ctypes.c_void_p),
                    len(hidden), hp, 0, rng._h, None))
                layers.append(out.value)
        arr = (ctypes.c_void_p * len(layers))(*layers)
        chain = out_handle()
        errors.check(lib.nvp_chain_create(byref(chain), base, len(layers),
                                          arr, None))
    except BaseException:
        for p in layers:
            lib.nvp_coupling_free(p)
        lib.nvp_base_free(base)
        raise
    return Chain._wrap(chain)


def to_state_dict(chain, prefix="", tensors=True, check_masks=True):
    """The parameters of `chain` as a PyTorch state dict in the layout
    above: an OrderedDict of float32 torch tensors (tensors=False: nested
    lists, without importing torch), keys "<prefix><k>.net.<2j>.weight"
    and ".bias" as in torch_model.py's nn.Sequential.

    check_masks: refuse (ValueError) a chain whose masks are not
    make_layers' alternating half split, which is all a state dict can be
    loaded into without saying more (layer_masks(chain) gives them).  A
    chain with a log-scale clamp (set_log_scale_clamp) is refused: the
    PyTorch layout applies exp to the raw output.  So is a chain with
    layers other than affine couplings (permutations, actnorm, linear),
    which the layout cannot describe (ValueError naming the layer), and a
    chain over a mixture base (the layout assumes N(0, I))."""
    if chain.base.kind != "normal":
        raise ValueError("the chain's base is a %s: the PyTorch layout "
                         "assumes a standard normal base" % chain.base.kind)
    for k in range(chain.num_layers):
        _coupling_of(chain, k)
    if check_masks:
        masks = layer_masks(chain)
        expected = alternating_masks(chain.dim, chain.num_layers)
        for k, (got, want) in enumerate(zip(masks, expected)):
            if got != want:
                raise ValueError(
                    "layer %d's mask is %s, not the alternating half split "
                    "%s of torch_model.make_layers (check_masks=False "
                    "converts anyway; layer_masks() gives the masks)"
                    % (k, got, want))
    if tensors:
        import torch   # only here: the module itself never needs it
    params = chain.params
    params = params.tolist() if hasattr(params, "tolist") else list(params)
    h = chain._h
    dim = chain.dim
    state = collections.OrderedDict()
    for k in range(chain.num_layers):
        offset = c_size_t(0)
        _lib.lib.nvp_chain_layer(h, k, byref(offset))
        layer = _coupling_of(chain, k)
        clamp = _lib.lib.nvp_coupling_log_scale_clamp(layer)
        if clamp != 0.0:
            raise ValueError("layer %d uses a log-scale clamp (%g), which "
                             "the PyTorch layout does not have" % (k, clamp))
        mask = (ctypes.c_ubyte * dim)()
        chain._check(_lib.lib.nvp_coupling_get_mask(
            layer, dim, ctypes.cast(mask, ctypes.c_void_p)))
        fan_in = sum(mask)
        widths = _layer_hidden(chain, layer) + [2 * (dim - fan_in)]
        pos = offset.value
        for j, fan_out in enumerate(widths):
            w = params[pos:pos + fan_in * fan_out]
            pos += fan_in * fan_out
            b = params[pos:pos + fan_out]
            pos += fan_out
            rows = [w[o::fan_out] for o in range(fan_out)]   # out x in
            key = "%s%d.net.%d." % (prefix, k, 2 * j)
            if tensors:
                state[key + "weight"] = torch.tensor(rows,
                                                     dtype=torch.float32)
                state[key + "bias"] = torch.tensor(b, dtype=torch.float32)
            else:
                state[key + "weight"] = rows
                state[key + "bias"] = b
            fan_in = fan_out
    return state


__all__ = ["alternating_masks", "from_state_dict", "layer_masks",
           "to_state_dict"]
