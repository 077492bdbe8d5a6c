"""Eigen-CAM (Muhammad & Yeasin 2020, "Eigen-CAM: class activation map using principal
components", https://arxiv.org/abs/2008.00299).

The projection of the layer's activations on their first principal component: the activations
``A`` (C x h x w) are laid out as an (h*w) x C matrix, centred over the positions, and projected
on the first right singular vector ``v_1``::

    M   = A^T - mean over positions          ((h*w) x C)
    map = ReLU(M v_1)                          (back to h x w)

No target and no gradient: it needs only the activations, so with Eigen-CAM alone the frame runs
an inference forward and no backward at all. It is class-agnostic (the same map for every class).

The sign of a singular vector is arbitrary. pytorch-grad-cam's ``EigenCAM`` leaves it to LAPACK;
here it is fixed as in pytorch-grad-cam's ``get_2d_projection_with_sign_correction`` (Eq. 13 of
Chung & Ying 2025, Seg-Eigen-CAM, https://doi.org/10.3390/app15137562): the projection is flipped
when its most negative value is larger in magnitude than its most positive one, so the salient
regions come out positive.
"""

from __future__ import annotations

import torch

from convscope.algorithms.gradcam import GradCAM
from convscope.algorithms.registry import register


def first_component(maps: torch.Tensor) -> torch.Tensor:
    """B x C x h x w -> B x h x w: the projection on the first principal component, sign-corrected.

    Non-finite values are taken as 0 (as pytorch-grad-cam does). Computed in float64.
    """
    b, c, h, w = maps.shape
    m = torch.nan_to_num(maps.double(), nan=0.0, posinf=0.0, neginf=0.0).reshape(b, c, h * w).transpose(1, 2)
    m = m - m.mean(dim=1, keepdim=True)
    # the right singular vectors of M are the eigenvectors of M^T M; the smaller Gram matrix is
    # M M^T ((h*w) x (h*w)): its top eigenvector u_1 gives M v_1 = s_1 u_1.
    if h * w <= c:
        evals, evecs = torch.linalg.eigh(m @ m.transpose(1, 2))
        proj = evecs[..., -1] * evals[..., -1].clamp(min=0).sqrt().unsqueeze(-1)
    else:
        _, _, vt = torch.linalg.svd(m, full_matrices=False)
        proj = m @ vt[:, 0, :].unsqueeze(-1)
        proj = proj.squeeze(-1)
    flip = proj.amin(dim=1, keepdim=True).abs() > proj.amax(dim=1, keepdim=True).abs()
    proj = torch.where(flip, -proj, proj)
    return proj.reshape(b, h, w).to(maps.dtype)


@register
class EigenCAM(GradCAM):
    name = "eigencam"
    order = 90
    title = "Eigen-CAM"
    summary = "first principal component of the layer's activations (no gradient, no target)"
    uses_gradient = False

    def weighted(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return activations

    def cam(self, activations: torch.Tensor, grads: torch.Tensor | None, eigen: bool) -> torch.Tensor:
        return first_component(activations).clamp_(min=0)
