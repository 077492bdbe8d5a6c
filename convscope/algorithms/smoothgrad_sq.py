"""SmoothGrad-squared (Hooker et al. 2019, "A benchmark for interpretability methods in deep
neural networks", https://arxiv.org/abs/1806.10758; SmoothGrad: Smilkov et al. 2017).

The mean of the *squared* input gradients over the noisy rows of SmoothGrad
(:mod:`convscope.algorithms.smoothgrad`, the same rows, seed and backward)::

    map = 1/N sum_i (dy/dx (x + e_i))^2

Shown as a magnitude. Captum's ``NoiseTunnel(Saliency(abs=False), nt_type="smoothgrad_sq")``
computes the same.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.registry import register
from convscope.algorithms.smoothgrad import noise_rows, noisy_gradients
from convscope.vocabulary import Needs, Target


@register
class SmoothGradSquared(Algorithm):
    name = "smoothgrad_sq"
    order = 150
    title = "SmoothGrad squared"
    summary = "the mean squared input gradient over SmoothGrad's noisy rows (shares them)"
    target_role = "selection"
    display = "magnitude"

    def needs(self, target: Target, layer: str | None) -> Needs:
        return Needs(rows=(noise_rows(target),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        return noisy_gradients(captured, target).pow(2).mean(dim=1)
