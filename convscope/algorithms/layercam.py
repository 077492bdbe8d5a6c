"""LayerCAM (Jiang et al. 2021, "LayerCAM: exploring hierarchical class activation maps for
localization", IEEE TIP 30, https://ieeexplore.ieee.org/document/9462463).

Each position of each channel is weighted by its own positive gradient (``g = dy/dA``)::

    map = ReLU(sum_k ReLU(g^k) * A^k)

so shallow layers, whose gradients vary a lot over space, still give fine-grained maps. Same
captures as Grad-CAM: free when Grad-CAM is on.
"""

from __future__ import annotations

import torch

from convscope.algorithms.gradcam import GradCAM
from convscope.algorithms.registry import register


def layercam_map(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``ReLU(sum_k ReLU(g^k) A^k)`` for B x C x h x w tensors: B x h x w."""
    return (grads.clamp(min=0) * activations).sum(dim=1).clamp_(min=0)


@register
class LayerCAM(GradCAM):
    name = "layercam"
    order = 80
    title = "LayerCAM"
    summary = "activations weighted position by position by their positive gradients (works at shallow layers)"

    def weighted(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return grads.clamp(min=0) * activations
