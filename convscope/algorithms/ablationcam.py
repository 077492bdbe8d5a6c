"""Ablation-CAM (Desai & Ramaswamy 2020, "Ablation-CAM: visual explanations for deep convolutional
network via gradient-free localization", WACV,
https://openaccess.thecvf.com/content_WACV_2020/papers/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.pdf).

Gradient-free: the weight of channel k is the relative drop of the target's score when that
channel of the layer is set to zero (``y^k``)::

    w_k = (y - y^k) / y
    map = ReLU(sum_k w_k A_k)

pytorch-grad-cam's ``AblationCAM`` computes the same (it zeroes the channel when the layer's
minimum is 0, as after a ReLU). The frame and its ablated copies are extra rows of one batched
forward, no backward: the layer's output is replaced on those rows by the frame's own
activations with one channel zeroed (row 0 unablated gives ``y``). ``Options.top_channels``
channels per frame (largest mean activation; default 32, the CLI uses every channel unless
``--top-channels K``); channels left out weigh 0 (their score is the original one, as
pytorch-grad-cam does for channels it skips).
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Captured
from convscope.algorithms.registry import register
from convscope.algorithms.scorecam import ScoreCAM, channel_rows, picked_weighted
from convscope.vocabulary import Needs, Target


@register
class AblationCAM(ScoreCAM):
    name = "ablationcam"
    order = 120
    title = "Ablation-CAM"
    summary = "channels weighted by the drop of the target's score when each is zeroed (batched forwards)"

    def needs(self, target: Target, layer: str | None) -> Needs:
        assert layer is not None
        return Needs(activations=(layer,), rows=(channel_rows("ablate", target, layer),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        assert layer is not None
        rows = captured.rows(channel_rows("ablate", target, layer))
        channels = rows.meta["channels"]
        scores = rows.score.view(channels.shape[0], -1).float()
        y = scores[:, :1]
        safe = torch.where(y != 0, y, torch.ones_like(y))
        weights = torch.where(y != 0, (y - scores[:, 1:]) / safe, 0.0)
        return self.reduce(picked_weighted(captured, layer, channels, weights))
