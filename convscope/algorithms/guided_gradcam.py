"""Guided Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391).

Guided backprop of the Grad-CAM target times the Grad-CAM map upsampled bilinearly to the
input size: fine pixel detail from guided backprop, restricted to where Grad-CAM says the class
evidence is. When the guided-backprop panel shows the same target, the engine runs the guided
backward once for both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convscope.algorithms.base import INPUT, Algorithm, Captured, Grad, Needs
from convscope.algorithms.gradcam import gradcam_map
from convscope.algorithms.registry import register
from convscope.engine.request import Target


@register
class GuidedGradCAM(Algorithm):
    name = "guided_gradcam"
    title = "Guided Grad-CAM"
    summary = "guided backprop of the class masked by its upsampled Grad-CAM map"
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
        return guided * up
