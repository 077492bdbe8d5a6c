"""Small models with set weights whose maps are blank, to check that blank maps are reported.

``DeadNet``: the last conv's BatchNorm has gamma = 0 (what timm's ``resnet18d`` does to the last
BN of every residual block at initialisation), so the gradient at ``conv2`` is exactly zero and
its Grad-CAM is all zero; ``conv_dead`` and ``fc_dead`` have zero weights and biases, so their
outputs are all zero. Guided backprop still has a signal (through the residual path).
Loadable by the CLI as ``-m helpers.blank_models:dead_net`` (tests/ is on ``sys.path``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DeadNet(nn.Module):
    def __init__(self, classes: int = 6) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, stride=2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv_dead = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(8, classes)
        self.fc_dead = nn.Linear(8, 5)
        with torch.no_grad():
            self.bn2.weight.zero_()  # zero gamma: no gradient reaches conv2
            for m in (self.conv_dead, self.fc_dead):
                m.weight.zero_()
                m.bias.zero_()

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.bn2(self.conv2(x)) + x)
        x = x + self.conv_dead(x).sum(dim=1, keepdim=True)  # all zero, but in the graph
        p = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(p) + self.fc_dead(p)[:, :1]


def dead_net() -> nn.Module:
    torch.manual_seed(0)
    return DeadNet().eval()
