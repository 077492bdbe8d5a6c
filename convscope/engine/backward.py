"""The backward passes of a frame: the gradients a plan asks for, in one of two strategies.

* ``sequential`` (default on CPU): one graph, one ``autograd.grad`` call per pass, the ReLU rule
  switched between calls. Costs one forward; the standard pass to the CAM layer only walks
  the tail.
* ``batched`` (default on CUDA): the input is repeated once per pass, rows carry their own
  targets and rules (a per-row mask in the ReLU hooks), one ``autograd.grad`` call. On a GPU a
  batch of 2-3 rows costs about as much as one.

Parameters never receive gradients: only ``torch.autograd.grad(..., inputs=[captured tensors /
the input])`` is used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from convscope.engine.capture import LayerCapture
from convscope.engine.plan import Plan
from convscope.engine.rules import BackwardRules
from convscope.models.layers import LayerInfo
from convscope.vocabulary import INPUT, RULES, Grad, Target


class Backward:
    """Takes the gradients of a :class:`Plan` from a forward that ran with a graph.

    Args:
        capture: the layer capture that holds this frame's layer outputs (the ``wrt`` tensors and
            the outputs channel and neuron targets are scored on).
        rules: the ReLU rule hooks (guided / standard, per row in the batched strategy).
        layers: layer name -> :class:`LayerInfo` (to read any layout as a map or as features).
    """

    def __init__(self, capture: LayerCapture, rules: BackwardRules, layers: Mapping[str, LayerInfo]) -> None:
        self.capture, self.rules, self.layers = capture, rules, layers
        self._masks: dict[tuple, torch.Tensor] = {}

    def copies(self, plan: Plan, batched: bool) -> int:
        """How many copies of the input the forward must run (one per pass when batched)."""
        return len(plan.passes) if batched and len(plan.passes) > 1 else 1

    def run(
        self, plan: Plan, logits: torch.Tensor, xin: torch.Tensor, top1: torch.Tensor, rows: int, batched: bool
    ) -> dict[Grad, torch.Tensor]:
        """Every gradient of ``plan`` for the first ``rows`` frames; ``logits`` of all copies."""
        if batched and len(plan.passes) > 1:
            return self._batched(plan, logits, xin, top1, rows)
        return self._sequential(plan, logits, xin, top1, rows)

    def score(self, target: Target, logits: torch.Tensor, top1: torch.Tensor, block: slice) -> torch.Tensor:
        """Per-row score of ``target`` for the rows in ``block`` (a 1-D tensor); contrast and counterfactual."""
        if target.versus is not None or target.negate:
            plain = dataclasses.replace(target, versus=None, negate=False)
            score = self.score(plain, logits, top1, block)
            if target.versus is not None:
                score = score - logits[block][:, target.versus]
            return -score if target.negate else score
        if target.kind == "class":
            rows = logits[block]
            if target.index is None:
                return rows.gather(1, top1.unsqueeze(1)).squeeze(1)
            return rows[:, target.index]
        assert target.layer is not None and target.index is not None
        a = self.capture.outputs[target.layer][block]
        info = self.layers[target.layer]
        if target.kind == "channel":
            return info.as_map(a)[:, target.index].flatten(1).amax(dim=1)
        return info.as_features(a)[:, target.index]

    def _wrt(self, name: str, xin: torch.Tensor) -> torch.Tensor:
        return xin if name == INPUT else self.capture.outputs[name]

    def _sequential(
        self, plan: Plan, logits: torch.Tensor, xin: torch.Tensor, top1: torch.Tensor, rows: int
    ) -> dict[Grad, torch.Tensor]:
        grads: dict[Grad, torch.Tensor] = {}
        block = slice(0, rows)
        scores = [self.score(p.target, logits, top1, block).sum() for p in plan.passes]
        last = len(plan.passes) - 1
        for i, (p, score) in enumerate(zip(plan.passes, scores, strict=True)):
            inputs = [self._wrt(w, xin) for w in p.wrt]
            self.rules.rule = p.rule
            got = grad(score, inputs, retain=i < last)
            for need, g in zip(p.grads(), got, strict=True):
                grads[need] = g
        return grads

    def _batched(
        self, plan: Plan, logits: torch.Tensor, xin: torch.Tensor, top1: torch.Tensor, rows: int
    ) -> dict[Grad, torch.Tensor]:
        blocks = [slice(i * rows, (i + 1) * rows) for i in range(len(plan.passes))]
        total = sum(self.score(p.target, logits, top1, b).sum() for p, b in zip(plan.passes, blocks, strict=True))
        wrt = list(dict.fromkeys(w for p in plan.passes for w in p.wrt))
        key = (plan.passes, rows)
        mask = self._masks.get(key)
        if mask is None:
            if len(self._masks) > 64:
                self._masks.clear()
            codes = [RULES.index(p.rule) for p in plan.passes for _ in range(rows)]
            mask = torch.tensor(codes, dtype=torch.int8, device=xin.device)
            self._masks[key] = mask
        self.rules.row_mask = mask
        self.rules.guided = plan.guided
        got = dict(zip(wrt, grad(total, [self._wrt(w, xin) for w in wrt], retain=False), strict=True))
        grads: dict[Grad, torch.Tensor] = {}
        for p, b in zip(plan.passes, blocks, strict=True):
            for need in p.grads():
                grads[need] = got[need.wrt][b]
        return grads


def grad(score: torch.Tensor, inputs: list[torch.Tensor], retain: bool) -> list[torch.Tensor]:
    """Gradients of ``score`` w.r.t. ``inputs`` only (never parameters); zeros where unused."""
    if not score.requires_grad:
        return [torch.zeros_like(t) for t in inputs]
    got = torch.autograd.grad(score, inputs, retain_graph=retain, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, got, strict=True)]
