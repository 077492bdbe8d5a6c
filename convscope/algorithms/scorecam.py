"""Score-CAM (Wang et al. 2020, "Score-CAM: score-weighted visual explanations for convolutional
neural networks", https://arxiv.org/abs/1910.01279).

Gradient-free: each channel ``A_k`` of the layer, upsampled to the input size and min-max scaled
to [0, 1] (``H_k``), masks the input; the target's score on the masked input weights the channel::

    s_k = y(x * H_k)
    w   = softmax_k(s_k)
    map = ReLU(sum_k w_k A_k)

This is pytorch-grad-cam's ``ScoreCAM`` (bilinear upsampling with aligned corners, 1e-8 in the
min-max scaling, a softmax over the channels of the target's logit). The paper takes each masked
input's softmax *probability* of the class (minus a baseline's) as ``w_k``; the logit form used
here keeps contrast and counterfactual targets meaningful (they are differences of logits).

The masked inputs are extra rows of one batched forward, no backward: ``Options.top_channels``
rows per frame (the K channels of largest mean activation; default 32, the CLI uses every channel
unless ``--top-channels K``). Channels left out weigh 0.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Captured
from convscope.algorithms.gradcam import GradCAM
from convscope.algorithms.options import current
from convscope.algorithms.registry import register
from convscope.vocabulary import Needs, Rows, Target


def channel_rows(kind: str, target: Target, layer: str) -> Rows:
    top = current().top_channels
    return Rows(kind, top, params=(("layer", layer), ("top", top)), target=target)


def picked_weighted(captured: Captured, layer: str, channels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """w_k A_k for the picked channels (B x K x h x w)."""
    acts = captured.activation(layer)
    b, k = channels.shape
    picked = acts.gather(1, channels.view(b, k, 1, 1).expand(-1, -1, *acts.shape[-2:]))
    return weights.view(b, k, 1, 1).to(acts.dtype) * picked


@register
class ScoreCAM(GradCAM):
    name = "scorecam"
    order = 110
    title = "Score-CAM"
    summary = "channels weighted by the target's score on the input masked by each (batched masked forwards)"
    uses_gradient = False
    #: augmentation smoothing would take K masked rows per augmented copy (rows built from other
    #: rows' activations), which the one batched row forward does not do: the map says it is unsmoothed
    aug_smooth = False

    def needs(self, target: Target, layer: str | None) -> Needs:
        assert layer is not None
        return Needs(activations=(layer,), rows=(channel_rows("mask", target, layer),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        assert layer is not None
        rows = captured.rows(channel_rows("mask", target, layer))
        channels = rows.meta["channels"]
        weights = torch.softmax(rows.score.view(channels.shape).float(), dim=1)
        return self.reduce(picked_weighted(captured, layer, channels, weights))

    @staticmethod
    def reduce(weighted: torch.Tensor) -> torch.Tensor:
        if current().eigen_smooth:
            from convscope.algorithms.eigencam import first_component

            return first_component(weighted).clamp_(min=0)
        return weighted.sum(dim=1).clamp_(min=0)
