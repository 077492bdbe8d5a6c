"""A small seeded CNN with 1000 outputs for the browser tests that need many frames a second and a
full ImageNet label list (1000 classes get ImageNet's names), loaded as ``e2e_models:tiny_imagenet``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def tiny_imagenet() -> nn.Module:
    """conv(3->8) ReLU pool conv(8->16) ReLU avgpool fc(16->1000)."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), relu1=nn.ReLU(inplace=True), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(8, 16, 3, padding=1), relu2=nn.ReLU(inplace=True),
        pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(16, 1000),
    ))
