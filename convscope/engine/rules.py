"""Backward rules for ReLU-like activations, switchable per backward call or per batch row.

Module hooks miss functional ``F.relu`` / ``torch.relu`` / ``Tensor.relu`` calls (torchvision's
DenseNet and Inception use them) and fight with in-place ReLUs and with one ReLU module reused
several times (ResNet's Bottleneck). A :class:`~torch.overrides.TorchFunctionMode` active during
the forward sees every one of those calls (``nn.ReLU`` / ``nn.ReLU6`` modules call them too), so
one mechanism covers modules, reuse, in-place and functional use. On each ReLU-like output it
registers a gradient hook that applies the rule *active at backward time*:

* ``standard``: the gradient passes unchanged (the ReLU's own mask ``x > 0`` follows);
* ``guided`` (Springenberg et al. 2015): negative gradients are zeroed first, so the node passes
  back ``relu(grad) * (x > 0)``; for ReLU6 (``hardtanh(0, 6)``) ``relu(grad) * (0 < x < 6)``.

Because the rule is read when the backward runs, one graph serves a standard backward (Grad-CAM)
and a guided one. With a per-row mask, one batched backward serves rows with different rules.
Activations with no guided rule (SiLU, GELU, Hardswish ...) pass gradients unchanged and are
recorded so results can say so.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

Rule = Literal["standard", "guided"]
RULES: tuple[Rule, ...] = ("standard", "guided")

_RELU = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6}
_HARDTANH = {F.hardtanh, F.hardtanh_, torch.nn.functional.hardtanh}
#: Activations that have no guided rule: their gradients pass with the standard rule.
_UNGUIDED = {
    F.silu: "SiLU",
    F.gelu: "GELU",
    F.hardswish: "Hardswish",
    F.mish: "Mish",
    F.elu: "ELU",
    F.selu: "SELU",
    F.celu: "CELU",
    F.leaky_relu: "LeakyReLU",
    F.softplus: "Softplus",
    F.prelu: "PReLU",
}


def _hardtanh_bounds(args: tuple, kwargs: dict) -> tuple[float, float]:
    lo = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
    hi = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
    return float(lo), float(hi)


class BackwardRules(TorchFunctionMode):
    """Enter around a forward pass; afterwards set :attr:`guided` or :attr:`row_mask` per backward.

    Attributes:
        guided: apply the guided rule in the next backward (when ``row_mask`` is None).
        row_mask: a bool tensor, one entry per batch row: the rows that take the guided rule.
        unguided: display names of the activations seen in the last forward that have no guided
            rule (they always pass gradients unchanged).
        hooked: how many ReLU-like outputs the last forward hooked.
    """

    def __init__(self) -> None:
        super().__init__()
        self.guided = False
        self.row_mask: torch.Tensor | None = None
        self.unguided: set[str] = set()
        self.hooked = 0

    def reset(self) -> None:
        """Forget what the previous forward recorded (call before each forward)."""
        self.guided = False
        self.row_mask = None
        self.unguided = set()
        self.hooked = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _RELU:
            self._hook(out)
        elif func in _HARDTANH:
            lo, _hi = _hardtanh_bounds(args, kwargs)
            if lo == 0.0:
                self._hook(out)
            else:
                self.unguided.add("Hardtanh")
        else:
            name = _UNGUIDED.get(func)
            if name is not None:
                self.unguided.add(name)
        return out

    def _hook(self, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(self._apply)
            self.hooked += 1

    def _apply(self, grad: torch.Tensor) -> torch.Tensor | None:
        mask = self.row_mask
        if mask is None:
            return grad.clamp(min=0) if self.guided else None
        if grad.ndim > 0 and grad.shape[0] == mask.shape[0]:
            return torch.where(mask.view(-1, *([1] * (grad.ndim - 1))), grad.clamp(min=0), grad)
        return grad.clamp(min=0) if self.guided else None

    def describe(self, rule: Rule) -> str:
        """``standard``, ``guided`` or e.g. ``guided (SiLU: standard)`` for the last forward."""
        if rule == "standard" or not self.unguided:
            return rule
        return f"guided ({', '.join(sorted(self.unguided))}: standard)"
