"""Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391).

For a conv layer with activations ``A_k`` (one map per channel k) and a score ``y`` (the
pre-softmax logit of the target class, or the selected neuron's value):

    alpha_k = spatial mean of dy / dA_k
    map     = ReLU(sum_k alpha_k * A_k)

The raw map has the layer's resolution; the renderer upsamples it bilinearly to the input size
and normalises it to [0, 1]. The gradient uses the standard backward rule.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.registry import register
from convscope.vocabulary import Grad, Needs, Target


def gradcam_map(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``ReLU(sum_k mean(dy/dA_k) * A_k)`` for B x C x h x w tensors: B x h x w."""
    alpha = grads.mean(dim=(-2, -1), keepdim=True)
    return (alpha * activations).sum(dim=1).clamp_(min=0)


@register
class GradCAM(Algorithm):
    name = "gradcam"
    title = "Grad-CAM"
    summary = "where the layer's features support the target: ReLU of gradient-weighted channels"
    target_role = "cam"
    display = "heatmap"
    uses_layer = True

    def needs(self, target: Target, layer: str | None) -> Needs:
        assert layer is not None
        return Needs(activations=(layer,), grads=(Grad(layer, target, "standard"),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        assert layer is not None
        return gradcam_map(captured.activation(layer), captured.grad(Grad(layer, target, "standard")))
