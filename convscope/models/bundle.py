"""What a loaded model carries besides its weights: how to feed it and how to read its output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

ResizePolicy = Literal["center_crop", "stretch"]


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB uint8 frame becomes the network's input tensor.

    Attributes:
        input_size: (height, width) of the tensor the network sees.
        resize_size: with ``center_crop``, the shorter side is resized to this, then the centre
            ``input_size`` is cut out (torchvision's classic 256 -> 224). Ignored by ``stretch``.
        policy: ``stretch`` (default: the whole frame squashed to ``input_size``, so nothing of a
            live view is hidden and maps lie 1:1 over the frame, as pytorch-grad-cam's ``cam.py``
            does) or ``center_crop`` (what ImageNet accuracy figures were measured with).
        mean: per-channel mean on the [0, 1] scale.
        std: per-channel standard deviation on the [0, 1] scale.
        interpolation: ``bilinear`` or ``bicubic``.
    """

    input_size: tuple[int, int] = (224, 224)
    resize_size: int = 256
    policy: ResizePolicy = "stretch"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class ModelBundle:
    """A model ready for convscope: the module in eval mode plus everything needed to use it.

    Attributes:
        module: the network, in eval mode, on ``device``.
        preprocessing: how frames are turned into its input.
        labels: one name per output class (``class 0``, ... when unknown).
        name: a display name such as ``resnet50 (random weights)``.
        device: where the module lives.
        source: how it was loaded (``torchvision``, ``timm``, ``builtin``, ``torchscript`` ...).
        scripted: True for TorchScript modules, whose internals hooks cannot see.
        token_grid: ``(h, w)`` of token layers whose grid cannot be inferred (``--grid HxW``).
    """

    module: nn.Module
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    name: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: str = "unknown"
    scripted: bool = False
    token_grid: tuple[int, int] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.labels)
