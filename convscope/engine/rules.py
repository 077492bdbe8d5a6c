"""Backward rules for ReLU-like activations, switchable per backward call or per batch row.

Module hooks miss functional ``F.relu`` / ``torch.relu`` / ``Tensor.relu`` calls (torchvision's
DenseNet and Inception use them). A :class:`~torch.overrides.TorchFunctionMode` active during the
forward sees every one of those calls (``nn.ReLU`` / ``nn.ReLU6`` modules call them too), so one
mechanism covers modules, reuse, in-place and functional use. On each ReLU-like output it registers
a gradient hook that applies the rule *active at backward time*:

* ``standard``: the gradient passes unchanged (the ReLU's own mask ``x > 0`` follows);
* ``guided`` (Springenberg et al. 2015): negative gradients are zeroed first, so the node passes
  back ``relu(grad) * (x > 0)``; for ReLU6 (``hardtanh(0, 6)``) ``relu(grad) * (0 < x < 6)``;
* ``deconvnet`` (Zeiler & Fergus 2014): the node passes back ``relu(grad)`` whatever its input
  (for ReLU6 ``relu(grad) * (x < 6)``). An output hook cannot undo the ReLU's own mask, so a
  forward armed with ``deconv=True`` adds to each ReLU-like output a term of value zero,
  ``(x - x.detach()) * (x <= 0)``, computed from the input *before* the call (in-place ReLUs
  included). Its gradient hook passes ``relu(grad)`` on deconvnet passes (or rows) and zero
  otherwise, so that forward still serves standard and guided passes exactly. Only a forward that
  plans a deconvnet pass pays for it. (Through the torch-function mode, an in-place ReLU whose
  return value the model ignores keeps the guided rule.)

Because the rule is read when the backward runs, one graph serves a standard backward (Grad-CAM)
and a guided one; with a per-row mask, one batched backward serves rows with different rules.
Registering the hook on the op's *output* tensor (not on the module) is what makes in-place ReLUs
and a module reused several times (ResNet's Bottleneck) work: each call's output gets its own hook.

The mode costs a Python call per torch function in the forward (about 20 us; on a GPU, where an
eager ResNet-50 forward is launch-bound, that is a large share). So a probe forward at start-up
checks whether the model calls any ReLU outside an ``nn.ReLU`` / ``nn.ReLU6`` / ``nn.Hardtanh(0, x)``
module; if not, forward hooks on those modules register the same tensor hooks and the mode is not
used. Activations with no guided rule (SiLU, GELU, Hardswish ...) pass gradients unchanged and
are recorded so results can say so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from convscope.vocabulary import RULES, Rule

_RELU = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6}
_HARDTANH = {F.hardtanh, F.hardtanh_}
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


def _kind(func: Any, args: tuple, kwargs: dict) -> str | None:
    """``relu`` for a ReLU-like call, an activation's display name if it has no guided rule, else None."""
    if func in _RELU:
        return "relu"
    if func in _HARDTANH:
        lo = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
        return "relu" if float(lo) == 0.0 else "Hardtanh"
    return _UNGUIDED.get(func)


def _is_relu_module(m: nn.Module) -> bool:
    return isinstance(m, nn.ReLU) or (isinstance(m, nn.Hardtanh) and float(m.min_val) == 0.0)


class _RuleMode(TorchFunctionMode):
    """Hooks every ReLU-like output of the forward it is active in."""

    def __init__(self, rules: BackwardRules) -> None:
        super().__init__()
        self.rules = rules

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        kind = _kind(func, args, kwargs)
        extra = self.rules.deconv_term(args[0]) if kind == "relu" and args else None
        out = func(*args, **kwargs)
        if kind == "relu":
            self.rules.hook(out)
            if extra is not None and isinstance(out, torch.Tensor):
                return out + extra
        elif kind is not None:
            self.rules.unguided.add(kind)
        return out


class _Probe(TorchFunctionMode):
    """Records ReLU-like calls made outside ReLU modules, and activations with no guided rule."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.functional = False
        self.unguided: set[str] = set()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        kind = _kind(func, args, kwargs)
        if kind == "relu" and self.depth == 0:
            self.functional = True
        elif kind not in (None, "relu"):
            self.unguided.add(kind)
        return func(*args, **kwargs)


class BackwardRules:
    """The switchable ReLU rule of one model; arm it around the forward, set the rule per backward.

    Attributes:
        rule: the rule of the next backward (when ``row_mask`` is None); ``guided`` is a bool view of it.
        row_mask: one entry per batch row: a bool tensor (the rows that take the guided rule) or an
            integer tensor of indices into :data:`RULES` (each row's rule).
        unguided: display names of the activations with no guided rule in the model's forward.
        functional: whether the model calls ReLUs outside ReLU modules (then the mode is used).
        hooked: how many ReLU-like outputs the last armed forward hooked.
    """

    def __init__(
        self, module: nn.Module, example: torch.Tensor | None = None, force_mode: bool = False
    ) -> None:
        self.rule: Rule = "standard"
        self.row_mask: torch.Tensor | None = None
        self.hooked = 0
        self._armed = False
        self._deconv = False
        self._pending: dict[int, torch.Tensor | None] = {}
        self._handles: list[RemovableHandle] = []
        self.functional, self._static_unguided = True, set()
        if example is not None and not force_mode:
            self.functional, self._static_unguided = _probe(module, example)
        self.unguided: set[str] = set(self._static_unguided)
        if not self.functional:
            for m in module.modules():
                if _is_relu_module(m):
                    self._handles.append(m.register_forward_pre_hook(self._module_pre_hook))
                    self._handles.append(m.register_forward_hook(self._module_hook))

    @property
    def guided(self) -> bool:
        """Whether the next backward uses the guided rule (setting it picks guided or standard)."""
        return self.rule == "guided"

    @guided.setter
    def guided(self, value: bool) -> None:
        self.rule = "guided" if value else "standard"

    @property
    def mechanism(self) -> str:
        """``torch-function mode`` or ``module hooks``: how ReLU outputs are found."""
        return "torch-function mode" if self.functional else "module hooks"

    def reset(self) -> None:
        """Back to the standard rule, nothing armed (call before each forward)."""
        self.rule = "standard"
        self.row_mask = None
        self.hooked = 0
        self.unguided = set(self._static_unguided)

    @contextlib.contextmanager
    def armed(self, deconv: bool = False) -> Iterator[None]:
        """Hook every ReLU-like output of the forward run inside this block.

        ``deconv``: also add the zero-valued term the ``deconvnet`` rule needs (see the module
        docstring); only a forward that plans a deconvnet pass should pay for it.
        """
        self._deconv = deconv
        try:
            if self.functional:
                with _RuleMode(self):
                    yield
                return
            self._armed = True
            try:
                yield
            finally:
                self._armed = False
        finally:
            self._deconv = False
            self._pending.clear()

    def _module_pre_hook(self, module: nn.Module, inputs: Any) -> None:
        if self._armed and self._deconv and inputs:
            self._pending[id(module)] = self.deconv_term(inputs[0])

    def _module_hook(self, module: nn.Module, _inputs: Any, output: Any) -> Any:
        if self._armed:
            self.hook(output)
            extra = self._pending.pop(id(module), None)
            if extra is not None and isinstance(output, torch.Tensor):
                return output + extra
        return None

    def deconv_term(self, x: Any) -> torch.Tensor | None:
        """``(x - x.detach()) * (x <= 0)`` with the deconvnet hook, for a ReLU's input ``x``; else None.

        Value zero; its gradient reaches ``x`` at the positions the ReLU's own mask blocks. Built
        before the ReLU runs, so an in-place ReLU cannot overwrite ``x`` first.
        """
        if not self._deconv or not isinstance(x, torch.Tensor) or not x.requires_grad:
            return None
        extra = (x - x.detach()) * (x <= 0)
        extra.register_hook(self._apply_deconv)
        return extra

    def hook(self, out: Any) -> None:
        """Register the rule's gradient hook on one ReLU-like output."""
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(self._apply)
            self.hooked += 1

    def _rows(self, grad: torch.Tensor, rule: Rule | None = None) -> torch.Tensor | None:
        """Per-row flags broadcastable to ``grad``: rows under ``rule`` (None: guided or deconvnet)."""
        mask = self.row_mask
        if mask is None or grad.ndim == 0 or grad.shape[0] != mask.shape[0]:
            return None
        if mask.dtype == torch.bool:
            flags = mask if rule in (None, "guided") else torch.zeros_like(mask)
        elif rule is None:
            flags = mask != RULES.index("standard")
        else:
            flags = mask == RULES.index(rule)
        return flags.view(-1, *([1] * (grad.ndim - 1)))

    def _apply(self, grad: torch.Tensor) -> torch.Tensor | None:
        rows = self._rows(grad)
        if rows is not None:
            return torch.where(rows, grad.clamp(min=0), grad)
        return grad.clamp(min=0) if self.rule != "standard" else None

    def _apply_deconv(self, grad: torch.Tensor) -> torch.Tensor:
        rows = self._rows(grad, "deconvnet")
        if rows is not None:
            return torch.where(rows, grad.clamp(min=0), torch.zeros_like(grad))
        return grad.clamp(min=0) if self.rule == "deconvnet" else torch.zeros_like(grad)

    def describe(self, rule: Rule) -> str:
        """``standard``, ``guided`` or e.g. ``guided (SiLU: standard)``."""
        if rule == "standard" or not self.unguided:
            return rule
        return f"{rule} ({', '.join(sorted(self.unguided))}: standard)"

    def close(self) -> None:
        """Remove the module hooks (if any)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def _probe(module: nn.Module, example: torch.Tensor) -> tuple[bool, set[str]]:
    """One forward of ``example``: does the model call ReLUs outside ReLU modules? Which unguided activations?"""
    probe = _Probe()

    def enter(_m: nn.Module, _inputs: Any) -> None:
        probe.depth += 1

    def leave(_m: nn.Module, _inputs: Any, _output: Any) -> None:
        probe.depth -= 1

    handles = []
    for m in module.modules():
        if _is_relu_module(m):
            handles.append(m.register_forward_pre_hook(enter))
            handles.append(m.register_forward_hook(leave))
    try:
        with torch.no_grad(), probe:
            module(example)
    finally:
        for h in handles:
            h.remove()
    return probe.functional, probe.unguided
