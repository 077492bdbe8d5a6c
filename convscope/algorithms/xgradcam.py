"""XGrad-CAM (Fu et al. 2020, "Axiom-based Grad-CAM: towards accurate visualization and
explanation of CNNs", https://arxiv.org/abs/2008.02312).

Each channel's weight is its gradient averaged with the channel's own activations as weights
(chosen so that the map satisfies the sensitivity and conservation axioms), with ``g = dy/dA``::

    alpha_k = sum_ij (A_ij^k / sum_ab A_ab^k) * g_ij^k      (0 where sum_ab A_ab^k = 0)
    map     = ReLU(sum_k alpha_k A^k)

This is the paper's formula; pytorch-grad-cam adds 1e-7 to the denominator instead of treating
a zero sum separately. Same captures as Grad-CAM: free when Grad-CAM is on.
"""

from __future__ import annotations

import torch

from convscope.algorithms.gradcam import GradCAM
from convscope.algorithms.registry import register


def xgradcam_weights(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM's channel weights alpha_k (B x C x 1 x 1)."""
    total = activations.sum(dim=(-2, -1), keepdim=True)
    safe = torch.where(total != 0, total, torch.ones_like(total))
    return torch.where(total != 0, (grads * activations).sum(dim=(-2, -1), keepdim=True) / safe, 0.0)


def xgradcam_map(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM for B x C x h x w activations and gradients: B x h x w."""
    return (xgradcam_weights(activations, grads) * activations).sum(dim=1).clamp_(min=0)


@register
class XGradCAM(GradCAM):
    name = "xgradcam"
    order = 70
    title = "XGrad-CAM"
    summary = "Grad-CAM with channel weights averaged by the channel's own activations (axiom-based)"

    def weighted(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return xgradcam_weights(activations, grads) * activations
