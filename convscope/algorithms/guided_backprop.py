"""Guided backpropagation (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806).

The gradient of the target with respect to the input image, where every ReLU passes back only
positive gradients at positive inputs: ``grad_in = relu(grad_out) * (x > 0)`` (for ReLU6,
``relu(grad_out) * (0 < x < 6)``). Target for a conv channel: the maximum of that channel's map;
for an FC neuron: its value; for a class: its pre-softmax logit.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.registry import register
from convscope.vocabulary import INPUT, Grad, Needs, Target


@register
class GuidedBackprop(Algorithm):
    name = "guided_backprop"
    order = 20
    title = "Guided backprop"
    summary = "input pixels that excite the selection, with only positive gradients through each ReLU"
    target_role = "selection"
    display = "gradient"

    def needs(self, target: Target, layer: str | None) -> Needs:
        return Needs(grads=(Grad(INPUT, target, "guided"),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        return captured.grad(Grad(INPUT, target, "guided"))
