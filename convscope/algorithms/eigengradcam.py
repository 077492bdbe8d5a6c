"""EigenGrad-CAM (pytorch-grad-cam's ``EigenGradCAM``: Eigen-CAM, Muhammad & Yeasin 2020,
https://arxiv.org/abs/2008.00299, applied to gradient times activation).

With ``g = dy/dA``, the first principal component of the element-wise product ``g * A`` laid out
as an (h*w) x C matrix centred over positions (see :mod:`convscope.algorithms.eigencam` for the
projection and its sign)::

    map = ReLU(first_component(g * A))

Class-discriminative like Grad-CAM, smoothed like Eigen-CAM. Same captures as Grad-CAM: free when
Grad-CAM is on.
"""

from __future__ import annotations

import torch

from convscope.algorithms.eigencam import first_component
from convscope.algorithms.gradcam import GradCAM
from convscope.algorithms.registry import register


@register
class EigenGradCAM(GradCAM):
    name = "eigengradcam"
    order = 100
    title = "EigenGrad-CAM"
    summary = "first principal component of gradient times activation"

    def weighted(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return grads * activations

    def cam(self, activations: torch.Tensor, grads: torch.Tensor | None, eigen: bool) -> torch.Tensor:
        return first_component(self.weighted(activations, grads)).clamp_(min=0)
