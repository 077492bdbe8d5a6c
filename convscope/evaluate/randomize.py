"""Cascading model randomisation (Adebayo et al. 2018, *Sanity checks for saliency maps*).

The model's parametrised layers (convolutions and linear layers), in execution order, are
re-initialised from the top (the logits) down: stage k has the top ``cut_k`` layers randomised,
the last stage all of them. A map that explains the *model* must change as its weights go; one
that stays the same (high rank correlation with the trained model's map) shows the input, not the
network. Re-initialisation is seeded (the same copies on every run and every worker): weights are
drawn from a normal distribution with each layer's own weight std (He-like for layers whose
weights are all equal), biases set to zero. The user's model is never modified: each stage is a
deep copy.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from convscope.models import ModelBundle

PARAMETRISED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def parametrised_layers(module: nn.Module) -> list[str]:
    """Names of conv and linear layers in definition order (execution order for sequential nets)."""
    return [name for name, m in module.named_modules() if isinstance(m, PARAMETRISED) and name]


def stage_cuts(count: int, stages: int) -> list[int]:
    """How many top layers each stage randomises: 1, then evenly up to all ``count``."""
    if count == 0 or stages < 1:
        return []
    return sorted({1, *(max(1, round(count * (k + 1) / stages)) for k in range(stages))})


def clean_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` without its hooks.

    A model an engine is running on carries that engine's hooks (capture, backward rules); a plain
    ``copy.deepcopy`` would copy them, and with them the engine they are bound to. Each hook table
    is swapped for an empty one through deepcopy's memo, so the live module is never touched (the
    dashboard copies its model while the frame loop runs it).
    """
    memo: dict[int, object] = {}
    for m in module.modules():
        for key, value in vars(m).items():
            if "hooks" in key and isinstance(value, dict):
                memo[id(value)] = type(value)()
    return copy.deepcopy(module, memo)


def randomize_top(module: nn.Module, layers: list[str], cut: int, seed: int) -> nn.Module:
    """A copy of ``module`` (hooks left out) with the last ``cut`` of ``layers`` re-initialised (seeded)."""
    clone = clean_copy(module)
    named = dict(clone.named_modules())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in layers[len(layers) - cut:]:
            m = named[name]
            w = m.weight
            fan_in = w[0].numel()
            std = float(w.float().std()) if w.numel() > 1 else 0.0
            if not std > 0:
                std = (2.0 / max(fan_in, 1)) ** 0.5
            w.copy_((torch.randn(w.shape, generator=g) * std).to(w.device, w.dtype))
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
    return clone


def randomized_bundles(bundle: ModelBundle, stages: int, seed: int) -> list[tuple[int, ModelBundle]]:
    """``[(layers randomised, bundle)]`` for each stage, top-down, all seeded by ``seed``."""
    layers = parametrised_layers(bundle.module)
    return [(cut, dataclasses.replace(bundle, module=randomize_top(bundle.module, layers, cut, seed),
                                      name=f"{bundle.name} (top {cut} of {len(layers)} layers randomised)"))
            for cut in stage_cuts(len(layers), stages)]
