"""Every module a forward pass runs, in execution order, with what its output is.

Any module whose output is a feature map can be looked at (activation grid, zoomed channel,
Grad-CAM): convs, but also blocks, stages, norms, activations and token layers. A dry forward
records, for each module, its output shape, its layout (:mod:`convscope.models.layout`) and how
often it ran. Registration order (``named_modules``) is not execution order (torchvision's
GoogLeNet and Inception define auxiliary heads early), so the list follows the order in which
modules *finish*: a block comes right after its last child.

A module that runs more than once per forward (torchvision's Bottleneck reuses one ReLU three
times) has no single output, so it is listed but cannot be selected.

The same forward also finds the **default layer** (see :func:`head_layer`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from convscope.errors import LayerError, suggest
from convscope.models.bundle import ModelBundle
from convscope.models.layout import SPATIAL, Layout, classify, feature_count, to_features, to_map

LayerKind = Literal["conv", "linear", "norm", "act", "block", "tokens"]
#: What a layer is asked for: a feature ``map`` (grid, channel, CAM) or a ``vector`` (FC map, neuron).
Role = Literal["conv", "linear"]

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_ACTIVATION_NAMES = {
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Swish", "Mish",
    "Hardswish", "HardSwish", "Hardsigmoid", "HardSigmoid", "Sigmoid", "Tanh", "Softplus",
    "QuickGELU", "GELUTanh", "HardMish", "Softmax",
}


@dataclass(frozen=True)
class LayerInfo:
    """One module of the forward pass.

    Attributes:
        index: position in execution order.
        name: qualified name (``layer4``, ``blocks.11.norm1``).
        kind: ``conv``, ``linear``, ``norm``, ``act``, ``tokens`` (another module with a token
            output) or ``block`` (anything else: blocks, stages, pools).
        shape: output shape without the batch dimension (``()`` when unknown: TorchScript).
        layout: ``map``, ``channels_last``, ``tokens``, ``vector`` or None (not viewable).
        grid: ``(h, w)`` of a spatial layout.
        prefix: leading tokens that are not grid positions (class, distillation, register).
        calls: how many times the module ran in one forward (only 1 is selectable).
        default: this is the default layer (the feature map that feeds the head).
        pool: the module is a pooling layer (never the default layer).
    """

    index: int
    name: str
    kind: LayerKind
    shape: tuple[int, ...]
    layout: Layout | None = None
    grid: tuple[int, int] | None = None
    prefix: int = 0
    calls: int = 1
    default: bool = False
    pool: bool = False

    @property
    def spatial(self) -> bool:
        """Its output is a grid of positions: an activation grid, a channel, a CAM layer."""
        return self.calls == 1 and self.layout in SPATIAL

    @property
    def vector(self) -> bool:
        """It can be shown as an FC map with selectable neurons (features in the last dim)."""
        return self.calls == 1 and (self.kind == "linear" or self.layout == "vector")

    @property
    def channels(self) -> int | None:
        """Channels of a map, features of a vector or a linear layer (``None``: unknown)."""
        if self.layout is None and self.kind == "linear" and self.shape:
            return int(self.shape[-1])
        return feature_count(self.shape, self.layout)

    def as_map(self, t: torch.Tensor) -> torch.Tensor:
        """This layer's output (or a gradient of it) as ``B x C x h x w``."""
        return to_map(t, self.layout, self.grid, self.prefix)

    def as_features(self, t: torch.Tensor) -> torch.Tensor:
        """This layer's output as ``B x N`` features (each the max over positions or tokens)."""
        return to_features(t, self.layout)

    def describe(self) -> str:
        """``layer4 (block, 512x7x7)`` / ``blocks.11.norm1 (norm, tokens 14x14 + 1)``."""
        if self.layout == "tokens" and self.grid:
            what = f"tokens {self.grid[0]}x{self.grid[1]}" + (f" + {self.prefix}" if self.prefix else "")
            return f"{self.name} ({self.kind}, {what}x{self.shape[-1]})"
        shape = "x".join(map(str, self.shape)) or "?"
        return f"{self.name} ({self.kind}, {shape})"

    def as_dict(self) -> dict:
        return {
            "index": self.index, "name": self.name, "kind": self.kind, "shape": list(self.shape),
            "layout": self.layout, "grid": list(self.grid) if self.grid else None,
            "prefix": self.prefix, "channels": self.channels, "calls": self.calls, "default": self.default,
        }


def module_kind(module: nn.Module) -> LayerKind:
    """What kind of module this is, by its class (TorchScript: by its original class name)."""
    name = getattr(module, "original_name", None) or type(module).__name__
    if isinstance(module, nn.modules.conv._ConvNd) or name in ("Conv2d", "Conv2dSame", "ConvTranspose2d"):
        return "conv"
    if isinstance(module, nn.Linear) or name == "Linear":
        return "linear"
    if isinstance(module, _NORMS) or name.endswith("Norm") or "Norm2d" in name or "BatchNorm" in name:
        return "norm"
    if type(module).__module__ == "torch.nn.modules.activation" or name in _ACTIVATION_NAMES:
        return "act"
    return "block"


def _skipped(module: nn.Module) -> bool:
    """Modules whose output is their input in eval mode: nothing to look at, and they clutter the list.

    Identity, dropout, and timm's DropPath / DropBlock (stochastic depth) by class name.
    """
    name = type(module).__name__
    return isinstance(module, nn.Identity | nn.modules.dropout._DropoutNd) or name.startswith(("DropPath", "DropBlock"))


def discover_layers(bundle: ModelBundle, grid: tuple[int, int] | None = None) -> list[LayerInfo]:
    """Every module of ``bundle.module`` with a tensor output, in the order a forward finishes them.

    One probe forward (with a graph) and one backward from the top-1 logit also mark the
    default layer (:func:`head_layer`).

    Args:
        bundle: the loaded model.
        grid: the token grid ``(h, w)`` for token layers whose grid cannot be inferred.
    """
    module = bundle.module
    if bundle.scripted:
        return _static_layers(module)
    grid = grid or bundle.token_grid
    order: dict[str, tuple[nn.Module, tuple[int, ...]]] = {}
    calls: dict[str, int] = {}
    outputs: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str):
        def hook(_m: nn.Module, _inp: Any, out: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            if name in order or not isinstance(out, torch.Tensor) or out.ndim < 2:
                return None
            order[name] = (_m, tuple(out.shape[1:]))
            if out.requires_grad:
                outputs[name] = out
                return out.clone()  # later in-place ops must not change what was recorded
            return None

        return hook

    for name, m in module.named_modules():
        if name and not _skipped(m):
            handles.append(m.register_forward_hook(make_hook(name)))
    h, w = bundle.preprocessing.input_size
    was_training = module.training
    seed = torch.Generator().manual_seed(0)
    leaf = torch.rand(1, 3, h, w, generator=seed).to(bundle.device).requires_grad_()
    try:
        module.eval()
        try:
            with torch.enable_grad():
                out = module(leaf * 1.0)  # not the leaf itself: a model may edit its input in place
        except RuntimeError:  # a forward that cannot record a graph still lists its layers
            order.clear(), calls.clear(), outputs.clear()
            with torch.no_grad():
                out = module(leaf.detach())
        logits = _first_tensor(out)
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    layers: list[LayerInfo] = []
    hints: list[tuple[int, int]] = []
    for i, (name, (m, shape)) in enumerate(order.items()):
        kind = module_kind(m)
        layout, g, prefix = classify(shape, (h, w), channels_last=kind == "linear", hints=hints, grid=grid)
        if layout == "tokens" and kind not in ("linear", "norm", "act"):
            kind = "tokens"
        if layout in ("map", "channels_last") and g is not None:
            hints.append(g)
        pool = "Pool" in type(m).__name__
        layers.append(LayerInfo(i, name, kind, shape, layout, g, prefix, calls.get(name, 1), pool=pool))
    default = head_layer(layers, outputs, logits)
    return [dataclasses.replace(la, default=True) if la.name == default else la for la in layers]


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    logits = getattr(out, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else None


def head_layer(
    layers: list[LayerInfo], outputs: dict[str, torch.Tensor], logits: torch.Tensor | None
) -> str | None:
    """The feature map that feeds the head: the default layer for Grad-CAM and the activation grid.

    The rule: the **last spatial output, in execution order, whose grid positions the top-1 score
    depends on**. The last spatial output comes right before global pooling / flatten / the
    classifier, so this lands on ResNet's ``layer4``, DenseNet's ``features`` (after ``norm5``),
    Inception's ``Mixed_7c``, MobileNet's and EfficientNet's last block *after* its norm and
    activation. A ViT's last outputs (the final norm, the last block) reach the head only through
    the class token, so their grid positions get exactly zero gradient; the rule then walks back
    to the last block's ``norm1``, where the patch tokens feed the class token's attention, as
    pytorch-grad-cam recommends. Pooling layers are passed over (VGG's adaptive pool to 7x7 only
    repeats ``features`` at 224 px), and so are linear layers: inside attention their output
    concatenates queries, keys and values, and their input carries the same positions. Containers finish after their last child, so of several names for
    one tensor (``layer4`` and ``layer4.2``) the outermost is chosen.

    When no layer has any signal (a head initialised to zero, as timm's MLP-Mixer does: every
    gradient is zero) the last spatial output stands for it, by the same structural rule.
    """
    spatial = [la for la in layers if la.spatial and la.kind != "linear" and not la.pool]
    if logits is not None and logits.ndim == 2 and logits.requires_grad:
        named = [la for la in spatial if la.name in outputs]
        score = logits[0, int(logits[0].detach().argmax())]
        try:
            grads = torch.autograd.grad(score, [outputs[la.name] for la in named], allow_unused=True)
        except RuntimeError:  # e.g. an output modified in place by the model itself
            grads = ()
        for la, g in zip(reversed(named), reversed(grads), strict=False):
            if g is not None and bool(la.as_map(g).abs().amax() > 0):
                return la.name
    return spatial[-1].name if spatial else None


#: The activation grid's default layer has at most this many channels and at least this grid.
GRID_MAX_CHANNELS = 256
GRID_MIN_SIDE = 14


def grid_layer(layers: list[LayerInfo]) -> str | None:
    """The layer a fresh dashboard shows as its activation grid (issue 14, item 6).

    The head layer (:func:`head_layer`) is right for Grad-CAM but a poor first picture as a grid:
    on EfficientNet-Lite0 it is ``bn2``, 1280 tiles of 7x7 that read as noise. The grid shows a
    **middle layer with a moderate channel count** instead: the last block, activation or norm
    output, up to the head layer, with at most :data:`GRID_MAX_CHANNELS` channels on a grid of at
    least :data:`GRID_MIN_SIDE` positions a side (Lite0: ``blocks.4``, 112 tiles of 14x14, about
    46 px each in the dashboard's grid; ResNet-50: ``layer3.5.bn2``, 256 x 14x14). Without such a
    layer (transformers: 768 channels everywhere) it is the head layer.
    """
    head = default_layer(layers)
    if head is None:
        return None
    fits = [
        la for la in layers
        if la.index <= head.index and la.spatial and not la.pool and la.kind in ("block", "act", "norm")
        and la.channels is not None and 8 <= la.channels <= GRID_MAX_CHANNELS
        and la.grid is not None and min(la.grid) >= GRID_MIN_SIDE
    ]
    return fits[-1].name if fits else head.name


def default_layer(layers: list[LayerInfo]) -> LayerInfo | None:
    """The layer :func:`discover_layers` marked as default (None for a model with no spatial layer)."""
    for la in layers:
        if la.default:
            return la
    return None


def _static_layers(module: nn.Module) -> list[LayerInfo]:
    """TorchScript modules hide their calls from hooks: registration order, shapes unknown."""
    out = []
    for name, m in module.named_modules():
        kind = module_kind(m)
        if kind in ("conv", "linear") and name:
            out.append(LayerInfo(len(out), name, kind, (), None))
    return out


def _eligible(layer: LayerInfo, role: Role | None) -> bool:
    if role is None:
        return True
    if layer.layout is None and not layer.shape:  # TorchScript: shapes unknown, trust the kind
        return layer.kind == role
    return layer.spatial if role == "conv" else layer.vector


def _why_not(layer: LayerInfo, role: Role) -> str:
    if layer.calls > 1:
        return f"{layer.name} runs {layer.calls} times per forward, so it has no single output"
    if role == "conv":
        return (f"{layer.describe()} is not a feature map (use a layer whose output is B x C x h x w, "
                "B x h x w x C or tokens; see `convscope layers`)")
    return f"{layer.describe()} has no feature vector to take neurons of"


def resolve_layer(layers: list[LayerInfo], key: str | int, kind: Role | None = None) -> LayerInfo:
    """Find a layer by qualified name or by index.

    ``kind="conv"`` asks for a feature map: any spatial layer by name, an index counts among conv
    layers (RT-CNN-Vis's ``--convindex``). ``kind="linear"`` asks for a vector: any linear or
    vector layer by name, an index counts among linear layers. ``-1`` is the last.

    Raises:
        LayerError: with close matches for an unknown name, why a named layer does not fit, or the
            valid range for a bad index.
    """
    what = {"conv": "conv layer", "linear": "linear layer", None: "layer"}[kind]
    # A name wins over an index: nn.Sequential children are named "0", "1", ...
    if isinstance(key, str):
        for layer in layers:
            if layer.name == key:
                if _eligible(layer, kind):
                    return layer
                raise LayerError(_why_not(layer, kind))  # type: ignore[arg-type]
    if isinstance(key, int) or (isinstance(key, str) and key.lstrip("-").isdigit()):
        pool = [la for la in layers if (kind is None or la.kind == kind) and _eligible(la, kind)]
        if not pool:
            raise LayerError(f"the model has no {what}s")
        i = int(key)
        if not -len(pool) <= i < len(pool):
            raise LayerError(f"{what} index {i} is out of range: the model has {len(pool)} (use 0..{len(pool) - 1} or -1)")
        return pool[i]
    names = [la.name for la in layers if _eligible(la, kind)]
    label = {"conv": "layer", "linear": "linear layer", None: "layer"}[kind]
    raise LayerError(f"unknown {label} {key!r}{suggest(str(key), names)}")
