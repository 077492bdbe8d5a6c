"""Grad-CAM++ (Chattopadhay et al. 2018, https://arxiv.org/abs/1710.11063).

Like Grad-CAM, but each channel's weight sums only the positive gradients, each scaled by a
per-pixel coefficient, using the closed form for an exponential score (with ``g = dy/dA``):

    a_ij^k = g^2 / (2 g^2 + sum_ab A_ab^k * g^3)      (0 where the denominator is 0)
    w_k    = sum_ij a_ij^k * ReLU(g_ij^k)
    map    = ReLU(sum_k w_k A^k)

It needs exactly what Grad-CAM needs, so enabling both costs no extra backward.
"""

from __future__ import annotations

import torch

from convscope.algorithms.gradcam import GradCAM
from convscope.algorithms.registry import register


def gradcam_pp_weights(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++'s channel weights w_k (B x C x 1 x 1)."""
    g2 = grads.pow(2)
    denom = 2 * g2 + activations.sum(dim=(-2, -1), keepdim=True) * grads.pow(3)
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.0)
    return (alpha * grads.clamp(min=0)).sum(dim=(-2, -1), keepdim=True)


def gradcam_pp_map(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ for B x C x h x w activations and gradients: B x h x w."""
    return (gradcam_pp_weights(activations, grads) * activations).sum(dim=1).clamp_(min=0)


@register
class GradCAMPlusPlus(GradCAM):
    """Same needs as Grad-CAM (so it shares Grad-CAM's backward); only the channel weights differ."""

    name = "gradcam_pp"
    order = 10
    title = "Grad-CAM++"
    summary = "Grad-CAM with pixel-wise weights of positive gradients (better for several objects)"

    def weighted(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return gradcam_pp_weights(activations, grads) * activations
