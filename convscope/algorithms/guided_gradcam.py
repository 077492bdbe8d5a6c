"""Guided Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391).

Guided backprop of the Grad-CAM target times the Grad-CAM map upsampled bilinearly to the
input size: fine pixel detail from guided backprop, restricted to where Grad-CAM says the class
evidence is. When the guided-backprop panel shows the same target, the engine runs the guided
backward once for both.

Which product: the CAM is first divided by its maximum (per image), so the mask lies in [0, 1]::

    map = guided * cam_up / max(cam_up)        (0 where the CAM is all zero)

This is captum's ``GuidedGradCam`` divided by one positive number per image, ``max(cam_up)``
(Pearson r with captum is exactly 1; multiply by the CAM's maximum to get captum's values back),
and pytorch-grad-cam's ``cam_mask * gb`` up to the interpolation: its CAM is min-max scaled to
[0, 1] at the layer's resolution, then resized; here it is resized, then divided by its maximum
without a shift (0 stays "no evidence"), which agrees whenever the CAM's minimum is 0. The raw ``.npy`` of ``explain --save-raw`` is
this map. Without the division the product inherits the CAM's scale: 1e-14 on some randomly
initialised networks, 1e19 on inception_v3, where its float32 sum of squares overflows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.gradcam import gradcam_map
from convscope.algorithms.registry import register
from convscope.vocabulary import INPUT, Grad, Needs, Target


@register
class GuidedGradCAM(Algorithm):
    name = "guided_gradcam"
    order = 30
    title = "Guided Grad-CAM"
    summary = "guided backprop of the class masked by its upsampled Grad-CAM map (scaled to [0, 1])"
    target_role = "cam"
    display = "gradient"
    uses_layer = True

    def needs(self, target: Target, layer: str | None) -> Needs:
        assert layer is not None
        return Needs(
            activations=(layer,),
            grads=(Grad(layer, target, "standard"), Grad(INPUT, target, "guided")),
        )

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        assert layer is not None
        cam = gradcam_map(captured.activation(layer), captured.grad(Grad(layer, target, "standard")))
        guided = captured.grad(Grad(INPUT, target, "guided"))
        up = F.interpolate(cam.unsqueeze(1), size=guided.shape[-2:], mode="bilinear", align_corners=False)
        return guided * normalized_mask(up)


def normalized_mask(up: torch.Tensor) -> torch.Tensor:
    """``up / max(up)`` per image (B x 1 x H x W, non-negative): in [0, 1]; all zero stays zero.

    A non-finite CAM stays non-finite (the renderer reports it rather than hiding it).
    """
    peak = up.amax(dim=(-2, -1), keepdim=True)
    return up / torch.where(peak > 0, peak, torch.ones_like(peak))
