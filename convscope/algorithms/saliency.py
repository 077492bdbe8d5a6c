"""Gradient saliency (Simonyan et al. 2014, https://arxiv.org/abs/1312.6034).

The plain gradient of the target with respect to the input (standard backward rule); shown as
the maximum absolute value over the colour channels of each pixel. Added as a plugin: the
engine knows nothing about it beyond its declared needs.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.registry import register
from convscope.vocabulary import INPUT, Grad, Needs, Target


@register
class Saliency(Algorithm):
    name = "saliency"
    order = 40
    title = "Saliency"
    summary = "plain input gradient of the selection: which pixels change the score most"
    target_role = "selection"
    display = "magnitude"

    def needs(self, target: Target, layer: str | None) -> Needs:
        return Needs(grads=(Grad(INPUT, target, "standard"),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        return captured.grad(Grad(INPUT, target, "standard"))
