"""Element-wise Grad-CAM (pytorch-grad-cam's ``GradCAMElementWise``; the HiResCAM of Draelos &
Carin 2020, https://arxiv.org/abs/2011.08891, with a ReLU per channel before the sum).

With ``g = dy/dA``::

    map = sum_k ReLU(g^k * A^k)

Only positive contributions count, position by position and channel by channel. Same captures
as Grad-CAM: free when Grad-CAM is on.
"""

from __future__ import annotations

import torch

from convscope.algorithms.gradcam import GradCAM
from convscope.algorithms.registry import register


def gradcam_elementwise_map(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``sum_k ReLU(g^k A^k)`` for B x C x h x w tensors: B x h x w."""
    return (grads * activations).clamp_(min=0).sum(dim=1)


@register
class GradCAMElementWise(GradCAM):
    name = "gradcam_elementwise"
    order = 60
    title = "Element-wise Grad-CAM"
    summary = "sum over channels of the positive parts of gradient times activation"

    def weighted(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return (grads * activations).clamp(min=0)
