"""The engine's private, faster copy of a model: BatchNorm folded into convs, channels_last.

Why: in eval mode a BatchNorm right after a conv is a per-channel affine map, so it can be folded
into the conv's weight and bias. That removes one full read and write of every conv output in the
forward *and* in the backward. ``channels_last`` lets oneDNN (CPU) and cuDNN (GPU) use their
fastest conv kernels; ReLU6 modules run out of place (see :func:`prepare`). Measured on this
project's 2-core CPU, 1 thread, median of 12 (``benchmarks/fold_channels_last.py``): a forward
plus an input backward went from 145 to 96 ms on EfficientNet-Lite0 (forward alone 57 to 44 ms),
from 491 to 409 ms on ResNet-50, and from 1187 to 1004 ms on VGG16 (no BatchNorm: channels_last
only).

Exactness: the dashboard shows a conv layer's output as the user's model computes it, i.e.
*before* its BatchNorm, and Grad-CAM takes gradients there. So every folded pair can be switched
back to conv + BatchNorm: :meth:`FastModel.exact` runs the layers a frame captures unfolded and
everything else folded. Gradients w.r.t. the input or a captured tensor are unchanged by folding
elsewhere (an affine map is an affine map); at start-up the folded copy's logits are compared with
the user's module, and any mismatch (a conv output that also feeds something else than its
BatchNorm, a weight re-computed by a hook, ...) means the plain module is used instead.

The user's module is never modified: the copy shares every parameter and buffer except the conv
weights, which it re-lays out (and folds), so it costs about the conv weights' memory once more.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class _Pair:
    """A conv whose output goes straight into a BatchNorm, with both parameter sets at hand."""

    conv: nn.Conv2d
    bn: nn.BatchNorm2d
    weight: nn.Parameter  # the user's, unfolded
    bias: nn.Parameter | None
    folded_weight: nn.Parameter
    folded_bias: nn.Parameter
    folded: bool = False


class FastModel:
    """A folded, ``channels_last`` copy of ``module`` whose pairs can be unfolded per frame.

    Build with :func:`prepare`; use :attr:`module` for the forward, feed it :meth:`input`.

    Attributes:
        module: the module to run (the copy, or the user's own when nothing could be prepared).
        channels_last: whether inputs should be laid out ``channels_last``.
        folded: the names of the convs that have a BatchNorm folded in.
        note: one line saying what was done, or why not (shown by ``live`` and ``bench``).
    """

    def __init__(self, module: nn.Module, pairs: dict[str, _Pair], channels_last: bool, note: str) -> None:
        self.module = module
        self.channels_last = channels_last
        self._pairs = pairs
        self._exact: frozenset[str] | None = None
        self.note = note
        self.exact(())

    @property
    def folded(self) -> list[str]:
        return list(self._pairs)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the module runs fastest on."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def exact(self, layers: Iterable[str]) -> None:
        """Run the conv layers in ``layers`` unfolded (their outputs pre-BatchNorm), fold the rest."""
        wanted = frozenset(layers)
        if wanted == self._exact:
            return
        self._exact = wanted
        for name, pair in self._pairs.items():
            _set_folded(pair, name not in wanted)


def _set_folded(pair: _Pair, folded: bool) -> None:
    if pair.folded == folded:
        return
    pair.folded = folded
    if folded:
        pair.conv.weight, pair.conv.bias = pair.folded_weight, pair.folded_bias
        pair.bn.forward = _folded_forward(pair.bn)  # type: ignore[method-assign]
    else:
        pair.conv.weight, pair.conv.bias = pair.weight, pair.bias
        del pair.bn.forward  # back to the class's forward


def _folded_forward(bn: nn.BatchNorm2d):
    """What the BatchNorm module still does once its affine map lives in the conv."""
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    if act is None:
        return _identity
    # timm's BatchNormAct2d: batch norm, then dropout, then the activation (kept as modules, so
    # the engine's ReLU hooks still see them).
    return lambda x: act(drop(x)) if drop is not None else act(x)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _foldable_bn(bn: nn.Module) -> bool:
    if not isinstance(bn, nn.BatchNorm2d) or bn.training or bn.running_mean is None or bn.running_var is None:
        return False
    if type(bn) is nn.BatchNorm2d:
        return True
    # timm's BatchNormAct2d (a BatchNorm2d subclass) is foldable because its forward is known:
    return type(bn).__name__ == "BatchNormAct2d" and hasattr(bn, "act") and hasattr(bn, "drop")


def _find_pairs(module: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv, bn) names where the BatchNorm's input is exactly the conv's output, each called once."""
    modules = dict(module.named_modules())
    outputs: dict[int, tuple[str, torch.Tensor]] = {}
    calls: dict[str, int] = {}
    found: list[tuple[str, str]] = []

    def conv_hook(name: str):
        def hook(_m: nn.Module, _inputs: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if isinstance(out, torch.Tensor):
                outputs[id(out)] = (name, out)

        return hook

    def bn_hook(name: str):
        def hook(_m: nn.Module, inputs: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            x = inputs[0] if inputs else None
            hit = outputs.get(id(x))
            if hit is not None and hit[1] is x:
                found.append((hit[0], name))

        return hook

    handles = []
    for name, m in modules.items():
        if isinstance(m, nn.Conv2d) and _uses_own_weight(m):
            handles.append(m.register_forward_hook(conv_hook(name)))
        elif _foldable_bn(m):
            handles.append(m.register_forward_pre_hook(bn_hook(name)))
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in handles:
            h.remove()
    return [(c, b) for c, b in found if calls.get(c) == 1 and calls.get(b) == 1]


def _uses_own_weight(conv: nn.Conv2d) -> bool:
    """Conv2d subclasses (timm's Conv2dSame ...) fold fine unless their weight is computed."""
    return "weight" in conv._parameters and not getattr(conv, "parametrizations", None)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d, memory_format: torch.memory_format) -> tuple[nn.Parameter, nn.Parameter]:
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -bn.running_mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        bias = shift if conv.bias is None else conv.bias.double() * scale + shift
        w = conv.weight.double() * scale.view(-1, 1, 1, 1)
        dtype = conv.weight.dtype
        weight = nn.Parameter(w.to(dtype).contiguous(memory_format=memory_format), requires_grad=False)
        return weight, nn.Parameter(bias.to(dtype), requires_grad=False)


def _input_grad(module: nn.Module, x: torch.Tensor, logits: Any) -> torch.Tensor:
    """The gradient of every row's top logit w.r.t. the input (parameters need no gradient)."""
    x = x.detach().clone().requires_grad_()
    with torch.enable_grad():
        out = logits(module(x))
        (grad,) = torch.autograd.grad(out.amax(dim=1).sum(), x)
    return grad.contiguous()


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson r of two tensors (1.0 when both are constant and equal, as all-zero gradients are)."""
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    norm = float(a.norm() * b.norm())
    if norm == 0.0:
        return 1.0 if torch.equal(a, b) else 0.0
    return float((a * b).sum()) / norm


def _max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = a.abs().max().clamp(min=1.0)
    return float((a.float() - b.float()).abs().max() / scale)


def prepare(
    module: nn.Module,
    example: torch.Tensor,
    logits: Any,
    fold: bool = True,
    channels_last: bool = True,
    tolerance: float = 1e-3,
) -> FastModel:
    """A :class:`FastModel` for ``module`` (in eval mode), checked against it on ``example``.

    Args:
        module: the user's module; not modified.
        example: an input batch to find BatchNorm pairs and check the copy with.
        logits: a function from the module's output to its logits tensor.
        fold: fold BatchNorms into convs.
        channels_last: lay conv weights and inputs out ``channels_last``.
        tolerance: the largest allowed difference of the copy's logits, relative to their scale.

    Never raises for a model it cannot handle: :attr:`FastModel.note` then says why the user's
    module is used as it is.
    """
    if not fold and not channels_last:
        return FastModel(module, {}, False, "plain module (optimisations off)")
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return FastModel(module, {}, False, "plain module (no conv layers)")
    try:
        with torch.no_grad():
            reference = logits(module(example))
        pairs = _find_pairs(module, example) if fold else []
        # Share every tensor with the user's module; only conv weights are replaced below.
        memo: dict[int, Any] = {id(t): t for t in module.parameters()}
        memo.update({id(t): t for t in module.buffers()})
        twin = copy.deepcopy(module, memo)
        twin.eval()
        names = dict(twin.named_modules())
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        built: dict[str, _Pair] = {}
        for conv_name, bn_name in pairs:
            conv, bn = names[conv_name], names[bn_name]
            weight, bias = _fold(conv, bn, fmt)
            built[conv_name] = _Pair(conv, bn, conv.weight, conv.bias, weight, bias)
        if channels_last:
            paired = {id(p.conv) for p in built.values()}
            for m in twin.modules():
                # Unpaired convs get a channels_last copy of the user's weight. A pair's unfolded
                # state keeps the user's weight as it is: it only runs for the captured layers.
                if isinstance(m, nn.Conv2d) and id(m) not in paired and isinstance(m._parameters.get("weight"), nn.Parameter):
                    m.weight = nn.Parameter(
                        m.weight.detach().contiguous(memory_format=torch.channels_last), requires_grad=False
                    )
        for m in twin.modules():
            # An in-place ReLU6 (hardtanh_) in a graph-recording forward costs a copy of its input
            # on the CPU: out of place, EfficientNet-Lite0's forward with a graph took 37 instead of
            # 41 ms (2 threads; 47 vs 54 ms on one). Inference is the same either way; plain
            # in-place ReLUs showed no difference (ResNet-50), so they stay as they are.
            if isinstance(m, nn.Hardtanh) and m.inplace:
                m.inplace = False
        fast = FastModel(twin, built, channels_last, "")
        with torch.no_grad():
            got = logits(twin(fast.input(example)))
        error = _max_error(reference, got)
        if not error <= tolerance:
            return FastModel(module, {}, False, f"plain module (the folded copy's logits differ by {error:.1e})")
        # Equal logits do not make equal gradients: some CPU backward kernels get channels_last
        # strides wrong (timm's LeViT AttentionDownsample: input gradient r = -0.02 with equal
        # logits), so the input gradient every map starts from is checked too, by correlation
        # (folding moves a few activations across a ReLU6's 0 or 6, which changes single pixels).
        r = _pearson(_input_grad(module, example, logits), _input_grad(twin, fast.input(example), logits))
        if not r >= 0.999:
            if channels_last:  # the usual culprit: try the folded copy in the default layout
                fast = prepare(module, example, logits, fold, False, tolerance)
                if fast.module is not module:
                    fast.note += f" (channels_last off: its input gradient differs, r = {r:.3f})"
                    return fast
            return FastModel(module, {}, False, f"plain module (the copy's input gradient differs: r = {r:.3f})")
        parts = []
        if built:
            parts.append(f"{len(built)} BatchNorm folded into convs")
        if channels_last:
            parts.append("channels_last")
        fast.note = ", ".join(parts) or "plain copy"
        return fast
    except Exception as exc:  # any model we cannot copy or fold still runs, as it is
        return FastModel(module, {}, False, f"plain module ({type(exc).__name__}: {exc})".splitlines()[0])
