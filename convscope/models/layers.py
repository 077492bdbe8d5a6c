"""Conv and fully-connected layers in execution order, with output shapes, from one dry forward.

Registration order (``named_modules``) is not execution order (torchvision's GoogLeNet and
Inception define auxiliary heads early), so we run a zero image through the model once and record
the order in which each ``nn.Conv2d`` / ``nn.Linear`` (subclasses included) first fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from convscope.errors import LayerError, suggest
from convscope.models.bundle import ModelBundle

LayerKind = Literal["conv", "linear"]


@dataclass(frozen=True)
class LayerInfo:
    """One conv or linear layer: its position in execution order, qualified name and output shape."""

    index: int
    name: str
    kind: LayerKind
    shape: tuple[int, ...]  # output shape without the batch dimension

    def as_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "kind": self.kind, "shape": list(self.shape)}


def _kind(module: nn.Module) -> LayerKind | None:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def discover_layers(bundle: ModelBundle) -> list[LayerInfo]:
    """All conv and linear layers of ``bundle.module`` in the order a forward pass runs them."""
    module = bundle.module
    if bundle.scripted:
        return _static_layers(module)
    seen: dict[str, tuple[LayerKind, tuple[int, ...]]] = {}
    handles = []

    def make_hook(name: str, kind: LayerKind):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if name not in seen and isinstance(out, torch.Tensor):
                seen[name] = (kind, tuple(out.shape[1:]))

        return hook

    for name, m in module.named_modules():
        kind = _kind(m)
        if kind is not None and name:
            handles.append(m.register_forward_hook(make_hook(name, kind)))
    h, w = bundle.preprocessing.input_size
    was_training = module.training
    try:
        module.eval()
        with torch.inference_mode():
            module(torch.zeros(1, 3, h, w, device=bundle.device))
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return [LayerInfo(i, name, kind, shape) for i, (name, (kind, shape)) in enumerate(seen.items())]


def _static_layers(module: nn.Module) -> list[LayerInfo]:
    """TorchScript modules hide their calls from hooks: registration order, shapes unknown."""
    out = []
    for name, m in module.named_modules():
        original = getattr(m, "original_name", type(m).__name__)
        kind: LayerKind | None = "conv" if original == "Conv2d" else "linear" if original == "Linear" else None
        if kind and name:
            out.append(LayerInfo(len(out), name, kind, ()))
    return out


def resolve_layer(layers: list[LayerInfo], key: str | int, kind: LayerKind | None = None) -> LayerInfo:
    """Find a layer by qualified name or by index among the layers of ``kind`` (``-1`` = the last).

    Raises:
        LayerError: with close matches for an unknown name, or the valid range for a bad index.
    """
    pool = [layer for layer in layers if kind is None or layer.kind == kind]
    what = {"conv": "conv layer", "linear": "linear layer", None: "layer"}[kind]
    if not pool:
        raise LayerError(f"the model has no {what}s")
    # A name wins over an index: nn.Sequential children are named "0", "1", ...
    for layer in pool:
        if isinstance(key, str) and layer.name == key:
            return layer
    if isinstance(key, int) or (isinstance(key, str) and key.lstrip("-").isdigit()):
        i = int(key)
        if not -len(pool) <= i < len(pool):
            raise LayerError(f"{what} index {i} is out of range: the model has {len(pool)} (use 0..{len(pool) - 1} or -1)")
        return pool[i]
    raise LayerError(f"unknown {what} {key!r}{suggest(str(key), [la.name for la in pool])}")
