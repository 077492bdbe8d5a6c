"""A small CNN with seeded weights, so server tests run the real engine at many frames a second.

Loaded through the ``module:callable`` model spec (``server_models:tiny_cnn``), as a user's
own model would be.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

SPEC = "server_models:tiny_cnn"
CONV = {"conv1": 8, "conv2": 16}
LINEAR = {"fc1": 32, "fc2": 10}


def tiny_cnn() -> nn.Module:
    """conv(3->8) ReLU pool conv(8->16) ReLU avgpool fc(16->32) ReLU fc(32->10)."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), relu1=nn.ReLU(inplace=True), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(8, 16, 3, padding=1), relu2=nn.ReLU(inplace=True),
        pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(),
        fc1=nn.Linear(16, 32), relu3=nn.ReLU(), fc2=nn.Linear(32, 10),
    ))
