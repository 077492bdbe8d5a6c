"""HiResCAM (Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations of
convolutional neural networks", https://arxiv.org/abs/2011.08891).

Instead of averaging the gradient over space first (Grad-CAM), HiResCAM multiplies gradient and
activation element-wise and sums over the channels, so the map is exactly the part of the score
each position contributes through a linear head (with ``g = dy/dA``)::

    map = ReLU(sum_k g^k * A^k)

Same captures as Grad-CAM (its layer's output and the standard gradient there): free when
Grad-CAM is on. The ReLU is pytorch-grad-cam's (its ``BaseCAM`` clamps every CAM).
"""

from __future__ import annotations

import torch

from convscope.algorithms.gradcam import GradCAM
from convscope.algorithms.registry import register


def hirescam_map(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``ReLU(sum_k g^k A^k)`` for B x C x h x w tensors: B x h x w."""
    return (grads * activations).sum(dim=1).clamp_(min=0)


@register
class HiResCAM(GradCAM):
    name = "hirescam"
    order = 50
    title = "HiResCAM"
    summary = "element-wise gradient times activation summed over channels (faithful to the score)"

    def weighted(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return grads * activations
