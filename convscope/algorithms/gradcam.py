"""Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391).

For a conv layer with activations ``A_k`` (one map per channel k) and a score ``y`` (the
pre-softmax logit of the target class, or the selected neuron's value):

    alpha_k = spatial mean of dy / dA_k
    map     = ReLU(sum_k alpha_k * A_k)

The raw map has the layer's resolution; the renderer upsamples it bilinearly to the input size
and normalises it to [0, 1]. The gradient uses the standard backward rule.

:class:`GradCAM` is also the base of every gradient CAM (HiResCAM, XGrad-CAM, LayerCAM ...): a
subclass only says how it weights the activations (:meth:`GradCAM.weighted`, B x C x h x w), and
the two smoothing options of pytorch-grad-cam apply to all of them (``ViewRequest.options``):

* ``eigen_smooth``: the map is the first principal component of the weighted activations
  (:func:`convscope.algorithms.eigencam.first_component`, ReLU) instead of their channel sum;
* ``aug_smooth``: the CAM is computed on 6 extra rows (the input and its horizontal flip, each
  times 0.9, 1 and 1.1, one batched forward and one backward), each map min-max scaled to [0, 1]
  and resized to the input size, the flipped ones flipped back, and the 6 averaged (as
  pytorch-grad-cam's ``forward_augmentation_smoothing``). The raw map then has the input's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.options import current
from convscope.algorithms.registry import register
from convscope.vocabulary import Grad, Needs, Rows, Target


def gradcam_map(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``ReLU(sum_k mean(dy/dA_k) * A_k)`` for B x C x h x w tensors: B x h x w."""
    alpha = grads.mean(dim=(-2, -1), keepdim=True)
    return (alpha * activations).sum(dim=1).clamp_(min=0)


def scale_and_resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """pytorch-grad-cam's ``scale_cam_image``: each B x h x w map min-max scaled to [0, 1], then
    resized bilinearly to ``size``."""
    lo = maps.flatten(1).amin(dim=1).view(-1, 1, 1)
    m = maps - lo
    m = m / (1e-7 + m.flatten(1).amax(dim=1).view(-1, 1, 1))
    return F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


@register
class GradCAM(Algorithm):
    name = "gradcam"
    order = 0
    title = "Grad-CAM"
    summary = "where the layer's features support the target: ReLU of gradient-weighted channels"
    target_role = "cam"
    display = "heatmap"
    uses_layer = True
    #: whether the map needs the gradient at the layer (Eigen-CAM does not)
    uses_gradient = True
    #: whether ``Options.aug_smooth`` applies to this CAM (its map says so when it does not)
    aug_smooth = True

    def weighted(self, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        """The weighted activations whose channel sum is the map (B x C x h x w)."""
        return grads.mean(dim=(-2, -1), keepdim=True) * activations

    def cam(self, activations: torch.Tensor, grads: torch.Tensor | None, eigen: bool) -> torch.Tensor:
        """The B x h x w map from activations and gradients (eigen smoothing or the channel sum)."""
        if eigen:
            from convscope.algorithms.eigencam import first_component

            return first_component(self.weighted(activations, grads)).clamp_(min=0)
        return self.weighted(activations, grads).sum(dim=1).clamp_(min=0)

    def augment_rows(self, target: Target, layer: str) -> Rows:
        """The augmentation-smoothing rows: 6 per frame, the layer's output and its gradient.

        The same declaration for every CAM (Eigen-CAM too, which ignores the gradient), so all
        of them share the 6 rows and their one backward.
        """
        return Rows("augment", 6, target=target, wrt=(layer,), activations=(layer,))

    def needs(self, target: Target, layer: str | None) -> Needs:
        assert layer is not None
        if current().aug_smooth:
            return Needs(rows=(self.augment_rows(target, layer),))
        if not self.uses_gradient:
            return Needs(activations=(layer,))
        return Needs(activations=(layer,), grads=(Grad(layer, target, "standard"),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        assert layer is not None
        opts = current()
        if not opts.aug_smooth:
            grads = captured.grad(Grad(layer, target, "standard")) if self.uses_gradient else None
            return self.cam(captured.activation(layer), grads, opts.eigen_smooth)
        rows = captured.rows(self.augment_rows(target, layer))
        grads = rows.grad(layer) if self.uses_gradient else None
        maps = scale_and_resize(self.cam(rows.activation(layer), grads, opts.eigen_smooth), captured.input.shape[-2:])
        maps = maps.view(-1, rows.count, *maps.shape[-2:])
        flips = torch.tensor([flip for flip, _ in rows.meta["augmentations"]], device=maps.device)
        maps = torch.where(flips.view(1, -1, 1, 1), maps.flip(-1), maps)
        return maps.mean(dim=1)
