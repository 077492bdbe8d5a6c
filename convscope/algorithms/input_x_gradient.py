"""Input x Gradient (Shrikumar et al. 2016, "Not just a black box: learning important features
through propagating activation differences", https://arxiv.org/abs/1605.01713).

The (normalised) input times the plain gradient of the target with respect to it::

    map = x * dy/dx          (3 x H x W)

It shares the standard input backward with saliency (one pass for both). Captum's
``InputXGradient`` computes the same.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.registry import register
from convscope.vocabulary import INPUT, Grad, Needs, Target


@register
class InputXGradient(Algorithm):
    name = "input_x_gradient"
    order = 160
    title = "Input x gradient"
    summary = "the input times its plain gradient: each pixel's first-order contribution to the score"
    target_role = "selection"
    display = "gradient"

    def needs(self, target: Target, layer: str | None) -> Needs:
        return Needs(grads=(Grad(INPUT, target, "standard"),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        return captured.input * captured.grad(Grad(INPUT, target, "standard"))
