"""Receptive fields: which box of the model input a position of a layer's grid sees.

Two methods, and every :class:`ReceptiveField` says which one it came from:

* ``architecture``: one forward of a small input under a :class:`torch.overrides.TorchFunctionMode`
  that follows every torch call of the real forward (so models with Python control flow, TF-"same"
  padding done with ``F.pad``, residual adds and concatenations all work; ``torch.fx`` cannot trace
  timm's EfficientNet). Each tensor carries ``(stride, lo, hi)`` per axis: position ``i`` of it
  covers input pixels ``[i * stride + lo, i * stride + hi]``. A conv or pool with kernel ``k``,
  stride ``s``, padding ``p`` and dilation ``d`` gives ``stride * s``, ``lo - p * stride``,
  ``hi + ((k - 1) * d - p) * stride``; ``F.pad`` shifts; pointwise ops (norms in eval mode,
  activations, add, mul, cat over channels) take the union of their spatial inputs. An input that
  went through a global reduction (squeeze-and-excitation's gate) modulates every position: the box
  leaves it out, as receptive fields usually do, and ``gated`` says it is there.
* ``gradient``: the support of ``d(sum over channels of the layer at (y, x)) / d(input)`` measured
  at a few positions with seeded random inputs, fitted to ``stride * i + [lo, hi]``. Used when the
  forward does something the architecture walk does not know (attention, token layers, a permute to
  channels-last, interpolation), and to check the architecture's answer at two positions under
  ``method="auto"`` (when they disagree, the gradient wins and ``note`` says why).

Boxes are ``[x0, y0, x1, y1]`` with an exclusive end (``x1 - x0`` is the width), clipped to the
image. :func:`to_source` maps a box in the model input to the source frame's own pixels through the
preprocessing resize / crop (:func:`convscope.models.preprocess.geometry`).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from convscope.errors import LayerError
from convscope.models.bundle import ModelBundle, Preprocessing
from convscope.models.layers import LayerInfo
from convscope.models.preprocess import geometry

Method = Literal["architecture", "gradient"]
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ReceptiveField:
    """The input box of every position of one layer's ``h x w`` grid.

    Attributes:
        layer: the layer's name.
        grid: ``(h, w)`` of the layer's map.
        input_size: ``(H, W)`` of the model input.
        stride: input pixels between neighbouring positions, ``(y, x)``.
        lo, hi: position ``i`` covers input pixels ``i * stride + lo .. i * stride + hi`` (inclusive).
        method: ``architecture`` or ``gradient``.
        gated: a global branch (e.g. squeeze-and-excitation) also scales the layer's values.
        note: why the method was chosen when it was not the architecture walk.
    """

    layer: str
    grid: tuple[int, int]
    input_size: tuple[int, int]
    stride: tuple[float, float]
    lo: tuple[float, float]
    hi: tuple[float, float]
    method: Method
    gated: bool = False
    note: str = ""

    @property
    def size(self) -> tuple[float, float]:
        """Unclipped ``(height, width)`` of one position's box, in input pixels."""
        return self.hi[0] - self.lo[0] + 1, self.hi[1] - self.lo[1] + 1

    def box(self, y: int, x: int) -> Box:
        """``[x0, y0, x1, y1]`` (exclusive end) in the model input, clipped to it."""
        h, w = self.input_size
        y0 = math.floor(y * self.stride[0] + self.lo[0])
        y1 = math.ceil(y * self.stride[0] + self.hi[0]) + 1
        x0 = math.floor(x * self.stride[1] + self.lo[1])
        x1 = math.ceil(x * self.stride[1] + self.hi[1]) + 1
        return max(0, x0), max(0, y0), min(w, x1), min(h, y1)

    def boxes(self, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """The boxes of many positions at once: ``N x 4`` float ``[x0, y0, x1, y1]`` on their device."""
        h, w = self.input_size
        ys, xs = ys.float(), xs.float()
        y0 = torch.floor(ys * self.stride[0] + self.lo[0]).clamp(0, h)
        y1 = (torch.ceil(ys * self.stride[0] + self.hi[0]) + 1).clamp(0, h)
        x0 = torch.floor(xs * self.stride[1] + self.lo[1]).clamp(0, w)
        x1 = (torch.ceil(xs * self.stride[1] + self.hi[1]) + 1).clamp(0, w)
        return torch.stack([x0, y0, x1, y1], dim=-1)

    def as_dict(self) -> dict:
        return {"layer": self.layer, "grid": list(self.grid), "stride": list(self.stride),
                "size": list(self.size), "lo": list(self.lo), "hi": list(self.hi),
                "method": self.method, "gated": self.gated, "note": self.note}


def to_source(box: Box | list[float], frame_hw: tuple[int, int], prep: Preprocessing) -> Box:
    """A box in the model input as a box in the source frame's own pixels (exclusive end, clipped).

    Undoes :func:`convscope.models.preprocess.resize_crop`: the crop offset, then the resize scale.
    The box is rounded outwards, so it always contains the source pixels the input box came from.
    """
    fh, fw = frame_hw
    rh, rw, top, left, _ch, _cw = geometry(fh, fw, prep)
    sy, sx = fh / rh, fw / rw
    x0, y0, x1, y1 = (float(v) for v in box)
    return (max(0, math.floor((x0 + left) * sx)), max(0, math.floor((y0 + top) * sy)),
            min(fw, math.ceil((x1 + left) * sx)), min(fh, math.ceil((y1 + top) * sy)))


# --------------------------------------------------------------------------------------------
# Architecture walk


@dataclass(frozen=True)
class _RF:
    """What one tensor's positions see. ``kind``: local (a box), global (everything) or unknown."""

    kind: Literal["local", "global", "unknown"]
    hw: tuple[int, int] = (0, 0)
    stride: tuple[float, float] = (1.0, 1.0)
    lo: tuple[float, float] = (0.0, 0.0)
    hi: tuple[float, float] = (0.0, 0.0)
    gated: bool = False
    why: str = ""


_GLOBAL = _RF("global")

# Ops that act on each position on its own (in eval mode), by function name.
_POINTWISE = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "sigmoid", "sigmoid_", "silu", "gelu", "hardswish",
    "hardsigmoid", "tanh", "tanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "mish",
    "softplus", "prelu", "threshold", "threshold_", "batch_norm", "dropout", "dropout2d", "feature_dropout",
    "alpha_dropout", "add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_", "true_divide",
    "__add__", "__radd__", "__iadd__", "__mul__", "__rmul__", "__imul__", "__sub__", "__rsub__", "__isub__",
    "__truediv__", "__rtruediv__", "__itruediv__", "__neg__", "neg", "clamp", "clamp_", "clamp_min",
    "clamp_min_", "clamp_max", "clamp_max_", "clip", "abs", "exp", "log", "sqrt", "rsqrt", "pow",
    "__pow__", "square", "contiguous", "clone", "to", "float", "half", "type_as", "detach",
    "where", "maximum", "minimum", "cat", "concat", "stack", "__getitem__", "channel_shuffle",
    "affine_grid_generator", "identity", "requires_grad_", "expand_as", "sign",
}
_RESHAPES = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "permute", "chunk", "split",
             "unbind", "narrow"}
_SHAPE_QUERIES = {"size", "dim", "numel", "__len__", "shape", "__get__", "__format__", "__bool__",
                  "__index__", "__int__", "__float__", "__repr__", "__hash__", "__eq__", "__ne__", "__lt__",
                  "__gt__", "__le__", "__ge__", "data_ptr", "is_contiguous", "item", "tolist",
                  "__setstate__", "dtype", "device", "requires_grad", "grad_fn", "_has_compatible_shallow_copy_type"}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "adaptive_avg_pool1d", "adaptive_max_pool1d",
               "linear", "matmul", "__matmul__", "std", "var", "norm", "logsumexp", "softmax", "log_softmax"}


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (0, 0)
    return int(v), int(v)


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


class _Walker(TorchFunctionMode):
    """Follows every torch call of one forward and gives each output tensor its :class:`_RF`."""

    def __init__(self) -> None:
        super().__init__()
        self.rf: dict[int, _RF] = {}
        self.keep: list[torch.Tensor] = []  # ids stay unique while the walk runs

    def set(self, t: torch.Tensor, rf: _RF) -> None:
        self.rf[id(t)] = rf
        self.keep.append(t)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        if name in _SHAPE_QUERIES:
            return out
        flat_in, _ = tree_flatten((args, kwargs))
        ins = [(t, self.rf[id(t)]) for t in flat_in if isinstance(t, torch.Tensor) and id(t) in self.rf]
        if not ins:
            return out
        flat_out, _ = tree_flatten(out)
        outs = [t for t in flat_out if isinstance(t, torch.Tensor)]
        if not outs:
            return out
        rf = self._rule(name, args, kwargs, ins, outs[0])
        for t in outs:
            self.set(t, rf if rf.kind != "local" or tuple(t.shape[-2:]) == rf.hw else _RF("unknown", why=name))
        return out

    # -- rules -----------------------------------------------------------------------------
    def _rule(self, name: str, args: tuple, kwargs: dict, ins: list, out: torch.Tensor) -> _RF:
        first_t, first = ins[0]
        if any(rf.kind == "unknown" for _t, rf in ins):
            return next(rf for _t, rf in ins if rf.kind == "unknown")
        if out.ndim < 3:
            return _GLOBAL
        hw = tuple(int(s) for s in out.shape[-2:])
        if name in ("conv2d", "max_pool2d", "avg_pool2d", "max_pool2d_with_indices", "lp_pool2d"):
            if first.kind != "local" or first_t is not args[0]:
                return first if first.kind != "local" else _RF("unknown", why=name)
            if name == "conv2d":
                weight = _arg(args, kwargs, 1, "weight", None)
                k = tuple(int(s) for s in weight.shape[-2:])
                s = _pair(_arg(args, kwargs, 3, "stride", 1))
                p_raw = _arg(args, kwargs, 4, "padding", 0)
                d = _pair(_arg(args, kwargs, 5, "dilation", 1))
                if isinstance(p_raw, str):
                    if p_raw == "valid":
                        p = (0, 0)
                    else:  # "same" (stride 1): PyTorch puts the extra pixel on the right / bottom
                        p = tuple((d[i] * (k[i] - 1)) // 2 for i in range(2))
                else:
                    p = _pair(p_raw)
            else:
                k = _pair(_arg(args, kwargs, 1, "kernel_size", 1))
                stride = _arg(args, kwargs, 2, "stride", None)
                s = _pair(stride) if stride not in (None, [], ()) else k
                p = _pair(_arg(args, kwargs, 3, "padding", 0))
                d = _pair(_arg(args, kwargs, 4, "dilation", 1)) if name.startswith("max_pool") else (1, 1)
            j, lo, hi = first.stride, first.lo, first.hi
            return _RF("local", hw, (j[0] * s[0], j[1] * s[1]),
                       (lo[0] - p[0] * j[0], lo[1] - p[1] * j[1]),
                       (hi[0] + ((k[0] - 1) * d[0] - p[0]) * j[0], hi[1] + ((k[1] - 1) * d[1] - p[1]) * j[1]),
                       first.gated)
        if name == "pad":
            pad = list(_arg(args, kwargs, 1, "pad", ()))
            if first.kind != "local" or first_t is not args[0]:
                return _RF("unknown", why=name)
            left = pad[0] if len(pad) >= 2 else 0
            top = pad[2] if len(pad) >= 4 else 0
            j, lo, hi = first.stride, first.lo, first.hi
            return _RF("local", hw, j, (lo[0] - top * j[0], lo[1] - left * j[1]),
                       (hi[0] - top * j[0], hi[1] - left * j[1]), first.gated)
        if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            if first.kind != "local":
                return first
            if hw == first.hw:
                return first
            if hw == (1, 1):
                return _GLOBAL
            if first.hw[0] % hw[0] == 0 and first.hw[1] % hw[1] == 0:
                k = (first.hw[0] // hw[0], first.hw[1] // hw[1])
                j, lo, hi = first.stride, first.lo, first.hi
                return _RF("local", hw, (j[0] * k[0], j[1] * k[1]), lo,
                           (hi[0] + (k[0] - 1) * j[0], hi[1] + (k[1] - 1) * j[1]), first.gated)
            return _RF("unknown", why=f"{name} to {hw}")
        if name in _REDUCTIONS:
            spatial_in = [rf for t, rf in ins if rf.kind == "local" and t.ndim >= 3]
            if spatial_in and hw == spatial_in[0].hw and name in ("mean", "sum", "amax", "amin", "max", "min",
                                                                    "std", "var", "norm", "softmax",
                                                                    "log_softmax", "logsumexp"):
                dim = _arg(args, kwargs, 1, "dim", None)
                dims = dim if isinstance(dim, (tuple, list)) else (dim,)
                nd = ins[0][0].ndim
                if dim is not None and all(int(di) % nd < nd - 2 for di in dims):
                    return self._union(ins, hw, name)  # over channels only: each position on its own
            return _GLOBAL if hw != (spatial_in[0].hw if spatial_in else None) else _RF("unknown", why=name)
        if name in _RESHAPES:
            if first.kind != "local":
                return first
            t0 = ins[0][0]
            if tuple(out.shape[-2:]) == first.hw and out.ndim >= 3 and name != "permute" and name != "transpose":
                return first
            if name == "transpose":
                d0, d1 = (int(v) % t0.ndim for v in (_arg(args, kwargs, 1, "dim0", 0), _arg(args, kwargs, 2, "dim1", 0)))
                if d0 < t0.ndim - 2 and d1 < t0.ndim - 2:
                    return first
            if name == "permute":
                dims = args[1:] if len(args) > 2 else _arg(args, kwargs, 1, "dims", ())
                dims = [int(v) % t0.ndim for v in (dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)]
                if dims[-2:] == [t0.ndim - 2, t0.ndim - 1]:
                    return first
            return _RF("unknown", why=f"{name} to {tuple(out.shape)}")
        if name in _POINTWISE:
            if name in ("cat", "concat", "stack"):
                dim = int(_arg(args, kwargs, 1, "dim", 0))
                if dim % out.ndim >= out.ndim - 2:
                    return _RF("unknown", why=f"{name} over a spatial dim")
            if name == "__getitem__" and first.kind == "local" and hw != first.hw:
                return _RF("unknown", why="spatial slicing")
            return self._union(ins, hw, name)
        return _RF("unknown", why=name)

    @staticmethod
    def _union(ins: list, hw: tuple[int, int], name: str) -> _RF:
        local = [rf for t, rf in ins if rf.kind == "local" and t.ndim >= 3 and tuple(t.shape[-2:]) == hw]
        broadcast = [rf for t, rf in ins if rf.kind == "global" or (t.ndim >= 3 and tuple(t.shape[-2:]) != hw)]
        if not local:
            return _GLOBAL
        strides = {rf.stride for rf in local}
        if len(strides) > 1:
            return _RF("unknown", why=f"{name} of maps with strides {sorted(strides)}")
        lo = (min(rf.lo[0] for rf in local), min(rf.lo[1] for rf in local))
        hi = (max(rf.hi[0] for rf in local), max(rf.hi[1] for rf in local))
        gated = any(rf.gated for rf in local) or bool(broadcast)
        return _RF("local", hw, local[0].stride, lo, hi, gated)


def _walk(bundle: ModelBundle, layer: LayerInfo) -> _RF:
    module = bundle.module
    target = dict(module.named_modules()).get(layer.name)
    if target is None:
        raise LayerError(f"unknown layer {layer.name!r}")
    h, w = bundle.preprocessing.input_size
    walker = _Walker()
    seen: list[torch.Tensor] = []

    def hook(_m, _i, out):
        if not seen and isinstance(out, torch.Tensor):
            seen.append(out)

    handle = target.register_forward_hook(hook)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(bundle.device)
    walker.set(x, _RF("local", (h, w)))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad(), walker:
            module(x)
    finally:
        handle.remove()
        module.train(was_training)
    if not seen:
        return _RF("unknown", why="the layer did not run")
    rf = walker.rf.get(id(seen[0]))
    if rf is None:
        return _RF("unknown", why="the layer's output was not followed")
    if rf.kind == "local" and layer.layout != "map":
        return _RF("unknown", why=f"{layer.layout} layout")
    return rf


# --------------------------------------------------------------------------------------------
# Gradient measurement


class _Stop(Exception):
    """Raised by a hook to end a forward at the layer that was wanted."""


def gradient_support(
    bundle: ModelBundle, layer: LayerInfo, y: int, x: int, channel: int | None = None,
    inputs: torch.Tensor | None = None,
) -> Box | None:
    """The bounding box ``[x0, y0, x1, y1]`` (exclusive end) of the nonzero input gradient of the
    layer's value at ``(y, x)``: of ``channel``, or of the sum over channels; the union over the
    rows of ``inputs`` (default: one seeded random input). None when the gradient is zero everywhere.
    """
    module = bundle.module
    target = dict(module.named_modules())[layer.name]
    h, w = bundle.preprocessing.input_size
    if inputs is None:
        inputs = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    x_in = inputs.detach().to(bundle.device).clone().requires_grad_()
    got: list[torch.Tensor] = []

    def hook(_m, _i, out):
        if not got and isinstance(out, torch.Tensor):
            got.append(out)
            raise _Stop  # nothing after the layer is needed
        return None

    handle = target.register_forward_hook(hook)
    was_training = module.training
    try:
        module.eval()
        with torch.enable_grad():
            try:
                module(x_in * 1.0)
            except _Stop:
                pass
            act = layer.as_map(got[0])
            value = act[:, channel, y, x] if channel is not None else act[:, :, y, x].sum(1)
            (grad,) = torch.autograd.grad(value.sum(), x_in)
    finally:
        handle.remove()
        module.train(was_training)
    nz = grad.detach().abs().sum(dim=(0, 1)) > 0
    if not bool(nz.any()):
        return None
    rows = torch.nonzero(nz.any(1)).flatten()
    cols = torch.nonzero(nz.any(0)).flatten()
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _measure(bundle: ModelBundle, layer: LayerInfo, note: str) -> ReceptiveField:
    """Fit ``stride * i + [lo, hi]`` to the gradient support at a few positions, per axis."""
    gh, gw = layer.grid  # type: ignore[misc]
    H, W = bundle.preprocessing.input_size
    fits = []
    for axis, n, size in ((0, gh, H), (1, gw, W)):
        picks = sorted({n // 2, min(n - 1, n // 2 + max(1, n // 4))}) if n > 1 else [0]
        spans = []
        for i in picks:
            y, x = (i, gw // 2) if axis == 0 else (gh // 2, i)
            box = gradient_support(bundle, layer, y, x)
            if box is None:
                spans.append(None)
                continue
            lo_px, hi_px = (box[1], box[3] - 1) if axis == 0 else (box[0], box[2] - 1)
            spans.append((i, lo_px, hi_px))
        spans = [s for s in spans if s is not None]
        if not spans:
            fits.append((size / n, 0.0, size - 1.0))  # no signal: say everything
            continue
        stride = size / n
        clipped = [s for s in spans if s[1] > 0 and s[2] < size - 1]
        use = clipped or spans
        if len(clipped) >= 2 and clipped[-1][0] != clipped[0][0]:
            stride = (clipped[-1][1] - clipped[0][1]) / (clipped[-1][0] - clipped[0][0]) or stride
        i, lo_px, hi_px = use[0]
        if lo_px <= 0 and hi_px >= size - 1:  # the whole input at every position
            fits.append((stride, -float(size), float(size)))
        else:
            fits.append((stride, lo_px - i * stride, hi_px - i * stride))
    return ReceptiveField(layer.name, (gh, gw), (H, W), (fits[0][0], fits[1][0]), (fits[0][1], fits[1][1]),
                          (fits[0][2], fits[1][2]), "gradient", False, note)


def _inside(inner: Box | None, outer: Box) -> bool:
    if inner is None:
        return True
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def receptive_field(
    bundle: ModelBundle, layer: LayerInfo, method: Literal["auto", "architecture", "gradient"] = "auto",
) -> ReceptiveField:
    """The receptive field of a spatial layer, cached per (module, input size, layer, method).

    See :func:`compute_receptive_field`.
    """
    key = (tuple(bundle.preprocessing.input_size), layer.name, tuple(layer.grid or ()), method)
    per_module = _CACHE.setdefault(bundle.module, {})
    if key not in per_module:
        per_module[key] = compute_receptive_field(bundle, layer, method)
    return per_module[key]


def compute_receptive_field(
    bundle: ModelBundle, layer: LayerInfo, method: Literal["auto", "architecture", "gradient"] = "auto",
) -> ReceptiveField:
    """The receptive field of a spatial layer.

    ``auto`` walks the architecture and checks the box against the gradient's support at the
    centre and a corner; it measures by gradient when the walk meets an op it does not know, or
    when the check fails. ``architecture`` raises :class:`LayerError` when the walk cannot tell.
    """
    if not layer.spatial or layer.grid is None:
        raise LayerError(f"{layer.describe()} is not a feature map, so it has no receptive field")
    H, W = bundle.preprocessing.input_size
    if method == "gradient":
        return _measure(bundle, layer, "asked for")
    rf = _walk(bundle, layer)
    if rf.kind != "local" or rf.hw != tuple(layer.grid):
        why = rf.why if rf.kind == "unknown" else f"{rf.kind} output"
        if method == "architecture":
            raise LayerError(f"cannot compute the receptive field of {layer.name} from the architecture ({why})")
        return _measure(bundle, layer, f"architecture walk stopped at: {why}")
    out = ReceptiveField(layer.name, tuple(layer.grid), (H, W), rf.stride, rf.lo, rf.hi, "architecture", rf.gated)
    if method == "auto" and not rf.gated:
        gh, gw = layer.grid
        for y, x in ((gh // 2, gw // 2), (gh - 1, 0)):
            if not _inside(gradient_support(bundle, layer, y, x), out.box(y, x)):
                return _measure(bundle, layer, f"the architecture's box missed the gradient at ({y}, {x})")
    return out


def input_gradient_support(grad: torch.Tensor) -> Box | None:
    """Bounding box of the nonzero entries of a ``3 x H x W`` (or ``H x W``) gradient."""
    g = grad.detach().abs()
    nz = g.sum(0) > 0 if g.ndim == 3 else g > 0
    if not bool(nz.any()):
        return None
    rows = torch.nonzero(nz.any(1)).flatten()
    cols = torch.nonzero(nz.any(0)).flatten()
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
