"""Small models with set (seeded) weights and written-out guided ReLU references for engine tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers.guided import GuidedReLU, GuidedReLU6
from torch import nn

from convscope.models import ModelBundle, Preprocessing
from convscope.models.labels import generic_labels


class MixedReLUNet(nn.Module):
    """Every way a ReLU can hide in a forward: an in-place module used twice, ``Tensor.relu``,
    ``F.relu`` in place, an in-place ``nn.ReLU6``, ``torch.relu``. With ``reference=True`` every
    one of them is the written-out guided Function instead (same forward values)."""

    def __init__(self, reference: bool = False, classes: int = 6) -> None:
        super().__init__()
        self.reference = reference
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 12, 3, padding=1, stride=2)
        self.conv4 = nn.Conv2d(12, 16, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.relu6 = nn.ReLU6(inplace=True)
        self.fc1 = nn.Linear(16, 10)
        self.fc2 = nn.Linear(10, classes)

    def forward(self, x):
        g, g6 = GuidedReLU.apply, GuidedReLU6.apply
        ref = self.reference
        r = g if ref else self.relu
        x = r(self.conv1(x))
        x = r(self.conv2(x)) + x  # the same in-place module a second time
        x = g(x) if ref else x.relu()  # Tensor.relu
        x = g(self.conv3(x)) if ref else F.relu(self.conv3(x), inplace=True)
        y = self.conv4(x) * 4.0
        x = g6(y) if ref else self.relu6(y)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = g(self.fc1(x)) if ref else torch.relu(self.fc1(x))
        return self.fc2(x)


def tiny_bundle(module: nn.Module, size: int = 32, classes: int = 6) -> ModelBundle:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    prep = Preprocessing(input_size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return ModelBundle(module, prep, generic_labels(classes), "tiny")


def seeded(cls, *args, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return cls(*args, **kwargs)
