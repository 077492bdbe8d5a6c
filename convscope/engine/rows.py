"""Extra input rows (issue 13): Integrated Gradients, SmoothGrad, augmentation smoothing,
Score-CAM's masked inputs and Ablation-CAM's ablated channels, in one batched forward.

Algorithms declare rows with :class:`convscope.algorithms.Rows` in their ``Needs``; after the
frame's own forward and backward passes the engine calls :func:`run_rows`, which

1. collects the distinct declarations of the enabled algorithms (equal declarations, e.g.
   SmoothGrad's and SmoothGrad-squared's noisy rows, run once);
2. builds every declaration's rows from the frame (and, for Score-CAM and Ablation-CAM, from the
   layer activations the frame's own forward captured) and concatenates them into one batch;
3. runs **one** forward over that batch, keeping the declared layers' outputs (and replacing a
   layer's output on the ablated rows);
4. runs **one** ``torch.autograd.grad`` per (target, rule) among the declarations that want
   gradients: rows that share a target share one backward; forward-only rows (Score-CAM,
   Ablation-CAM) need none;
5. returns the frame's captures extended with ``rows(declaration)``.

With no declared rows it returns the captures unchanged and costs nothing. The module knows the
engine only through ``engine.prepared``, ``engine.layer_info``, ``engine.bundle.preprocessing`` and
``engine._fast.input``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from convscope.algorithms import get
from convscope.vocabulary import INPUT, Rows, Target

#: augmentation smoothing: (horizontal flip, intensity factor), as pytorch-grad-cam's ttach set
AUGMENTATIONS = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))


@dataclass
class RowCaptured:
    """What one declaration's rows gave (``frames * count`` rows, frame-major)."""

    input: torch.Tensor
    count: int
    meta: dict = field(default_factory=dict)
    score: torch.Tensor | None = None
    acts: dict[str, torch.Tensor] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    layers: dict = field(default_factory=dict)

    def activation(self, layer: str) -> torch.Tensor:
        return self.layers[layer].as_map(self.acts[layer])

    def grad(self, wrt: str) -> torch.Tensor:
        g = self.grads[wrt]
        return g if wrt == INPUT else self.layers[wrt].as_map(g)


class WithRows:
    """The frame's captures plus ``rows(declaration)``; everything else is delegated."""

    def __init__(self, base: Any, rows: dict[Rows, RowCaptured]) -> None:
        self._base = base
        self._rows = rows
        self.input = base.input

    def activation(self, layer: str) -> torch.Tensor:
        return self._base.activation(layer)

    def grad(self, need: Any) -> torch.Tensor:
        return self._base.grad(need)

    def rows(self, rows: Rows) -> RowCaptured:
        return self._rows[rows]


def declared(plan: Any) -> list[Rows]:
    """The distinct row declarations of a plan's jobs, in job order (options must be active)."""
    out: dict[Rows, None] = {}
    for job in plan.jobs:
        for rows in get(job.name).needs(job.target, job.layer).rows:
            out.setdefault(rows, None)
    return list(out)


def run_rows(engine: Any, plan: Any, captured: Any, top1: torch.Tensor) -> Any:
    """The captures extended with every declared row set (see the module docstring)."""
    decls = declared(plan)
    if not decls:
        return captured
    x = captured.input
    frames = x.shape[0]
    built = [_build(engine, d, captured) for d in decls]
    inputs = torch.cat([b.input for b in built])
    spans, start = [], 0
    for b in built:
        spans.append(slice(start, start + b.input.shape[0]))
        start += b.input.shape[0]
    wanted: dict[str, bool] = {}
    for d in decls:
        for layer in d.activations:
            wanted.setdefault(layer, False)
        for w in d.wrt:
            if w != INPUT and d.target is not None:
                wanted[w] = True
        if d.target is not None and d.target.kind != "class" and d.target.layer is not None:
            wanted.setdefault(d.target.layer, False)
    replace = {b.replace[0]: [] for b in built if b.replace is not None}
    for b, span in zip(built, spans, strict=True):
        if b.replace is not None:
            replace[b.replace[0]].append((span, b.replace[1]))
    input_grad = any(INPUT in d.wrt and d.target is not None for d in decls)
    need_grad = any(d.target is not None and d.wrt for d in decls)
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(engine.prepared.named_modules())
    handles = []

    def hook_for(name: str):
        def hook(_m, _i, out):
            if not isinstance(out, torch.Tensor) or name in outputs:
                return None
            if name in replace:
                out = out.clone()
                for span, value in replace[name]:
                    out[span] = value.to(out.dtype)
            if name in wanted:
                if wanted[name] and not out.requires_grad:
                    out = out.detach().requires_grad_()
                outputs[name] = out
                return out.clone()
            return out

        return hook

    for name in dict.fromkeys([*wanted, *replace]):
        handles.append(modules[name].register_forward_hook(hook_for(name)))
    try:
        engine._fast.exact(dict.fromkeys([*wanted, *replace], False) | wanted)
        with torch.enable_grad() if need_grad else torch.inference_mode():
            xin = engine._fast.input(inputs)
            if input_grad:
                xin = xin.detach().requires_grad_()
            logits = _logits(engine.prepared(xin))
            rows_top1 = torch.cat([top1.repeat_interleave(b.input.shape[0] // frames) for b in built])
            scores = {}
            for d, span in zip(decls, spans, strict=True):
                if d.target is not None:
                    scores[d] = _score(engine, d.target, logits[span], rows_top1[span], outputs, span)
            grads = _backward(decls, spans, scores, xin, outputs)
    finally:
        for h in handles:
            h.remove()
    result = {}
    for d, b, span in zip(decls, built, spans, strict=True):
        rc = RowCaptured(
            input=inputs[span].detach(),
            count=b.input.shape[0] // frames,
            meta=b.meta,
            score=scores[d].detach() if d in scores else None,
            acts={layer: outputs[layer][span].detach() for layer in d.activations},
            grads=grads.get(d, {}),
            layers=engine.layer_info,
        )
        result[d] = rc
    return WithRows(captured, result)


def _backward(decls, spans, scores, xin, outputs) -> dict[Rows, dict[str, torch.Tensor]]:
    """One autograd.grad per (target, rule): rows that share a target share one backward."""
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(decls):
        if d.target is not None and d.wrt:
            groups.setdefault((d.target, d.rule), []).append(i)
    out: dict[Rows, dict[str, torch.Tensor]] = {}
    keys = list(groups)
    for n, key in enumerate(keys):
        members = groups[key]
        wrt = list(dict.fromkeys(w for i in members for w in decls[i].wrt))
        tensors = [xin if w == INPUT else outputs[w] for w in wrt]
        total = sum(scores[decls[i]].sum() for i in members)
        got = torch.autograd.grad(total, tensors, retain_graph=n < len(keys) - 1, allow_unused=True)
        got = [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, got, strict=True)]
        by_wrt = dict(zip(wrt, got, strict=True))
        for i in members:
            out[decls[i]] = {w: by_wrt[w][spans[i]] for w in decls[i].wrt}
    return out


def _score(engine, target: Target, logits, top1, outputs, span) -> torch.Tensor:
    """Per-row score of ``target`` (class logit, channel maximum, neuron value; contrast, counterfactual)."""
    if target.versus is not None or target.negate:
        score = _score(engine, dataclasses.replace(target, versus=None, negate=False), logits, top1, outputs, span)
        if target.versus is not None:
            score = score - logits[:, target.versus]
        return -score if target.negate else score
    if target.kind == "class":
        if target.index is None:
            return logits.gather(1, top1.unsqueeze(1)).squeeze(1)
        return logits[:, target.index]
    info = engine.layer_info[target.layer]
    a = outputs[target.layer][span]
    if target.kind == "channel":
        return info.as_map(a)[:, target.index].flatten(1).amax(dim=1)
    return info.as_features(a)[:, target.index]


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return out[0]
    return out.logits


@dataclass
class _Built:
    input: torch.Tensor
    meta: dict
    replace: tuple[str, torch.Tensor] | None = None


def top_channels(acts: torch.Tensor, top: int | None) -> torch.Tensor:
    """B x K channel indices of largest spatial mean activation (every channel, in order, for None)."""
    b, c = acts.shape[:2]
    if top is None or top >= c:
        return torch.arange(c, device=acts.device).expand(b, c)
    return acts.mean(dim=(-2, -1)).topk(top, dim=1).indices


def _build(engine: Any, d: Rows, captured: Any) -> _Built:
    x = captured.input
    b = x.shape[0]
    if d.kind == "interpolate":
        n = int(d.count or 1)
        base = baseline(engine, x, str(d.param("baseline", "black")), float(d.param("blur_sigma", 8.0)))
        alphas = (torch.arange(n, device=x.device, dtype=x.dtype) + 0.5) / n
        rows = base.unsqueeze(1) + alphas.view(1, n, 1, 1, 1) * (x - base).unsqueeze(1)
        return _Built(rows.flatten(0, 1), {"baseline": base, "alphas": alphas})
    if d.kind == "noise":
        n = int(d.count or 1)
        gen = torch.Generator(device=x.device).manual_seed(int(d.seed))
        noise = torch.randn((b, n, *x.shape[1:]), generator=gen, device=x.device, dtype=x.dtype)
        span = (x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1)).view(b, 1, 1, 1, 1)
        sigma = float(d.param("noise", 0.15)) * span
        return _Built((x.unsqueeze(1) + sigma * noise).flatten(0, 1), {"sigma": sigma.flatten(), "noise": noise})
    if d.kind == "augment":
        rows = []
        for flip, factor in AUGMENTATIONS:
            t = x.flip(-1) if flip else x
            rows.append(t * factor)
        return _Built(torch.stack(rows, dim=1).flatten(0, 1), {"augmentations": AUGMENTATIONS})
    if d.kind in ("mask", "ablate"):
        layer = str(d.param("layer"))
        acts = captured.activation(layer).float()
        channels = top_channels(acts, d.param("top"))
        k = channels.shape[1]
        if d.kind == "mask":
            picked = acts.gather(1, channels.view(b, k, 1, 1).expand(-1, -1, *acts.shape[-2:]))
            up = F.interpolate(picked, size=x.shape[-2:], mode="bilinear", align_corners=True)
            lo = up.flatten(2).amin(dim=2).view(b, k, 1, 1)
            hi = up.flatten(2).amax(dim=2).view(b, k, 1, 1)
            masks = (up - lo) / (hi - lo + 1e-8)
            rows = x.unsqueeze(1) * masks.unsqueeze(2)
            return _Built(rows.flatten(0, 1), {"channels": channels, "masks": masks})
        raw = captured._base.acts[layer][:b] if hasattr(captured, "_base") else captured.acts[layer][:b]
        info = engine.layer_info[layer]
        cdim = 1 if info.layout == "map" else raw.ndim - 1
        reps = raw.unsqueeze(1).repeat(1, k + 1, *([1] * (raw.ndim - 1)))  # row 0: unablated
        index = channels.view(b, k, *([1] * (raw.ndim - 1)))
        moved = reps[:, 1:].movedim(cdim + 1, 2)  # B x k x C x ...
        onehot = torch.zeros(b, k, moved.shape[2], device=x.device, dtype=torch.bool)
        onehot.scatter_(2, index.view(b, k, 1), True)
        moved = moved.masked_fill(onehot.view(b, k, -1, *([1] * (moved.ndim - 3))), 0)
        reps = torch.cat([reps[:, :1], moved.movedim(2, cdim + 1)], dim=1)
        rows = x.unsqueeze(1).expand(b, k + 1, *x.shape[1:])
        return _Built(rows.flatten(0, 1), {"channels": channels}, (layer, reps.flatten(0, 1)))
    raise ValueError(f"unknown row kind {d.kind!r}")


def baseline(engine: Any, x: torch.Tensor, kind: str, sigma: float = 8.0) -> torch.Tensor:
    """Integrated Gradients' baseline for normalised frames ``x``: a black image or ``x`` blurred."""
    if kind == "black":
        prep = engine.bundle.preprocessing
        mean = torch.tensor(prep.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(prep.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return ((0 - mean) / std).expand_as(x).contiguous()
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
