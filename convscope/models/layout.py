"""How a module's output is a feature map: the layout of its dimensions, found from its shape.

A layer can be shown as an activation grid or explained by Grad-CAM when its output is a stack of
2-D maps. Networks hand those out in three layouts:

* ``map``: ``B x C x h x w`` (every CNN);
* ``channels_last``: ``B x h x w x C`` (timm's Swin and other stages that keep channels last, and
  a linear layer applied to such a map, as in ConvNeXt's blocks);
* ``tokens``: ``B x N x C`` where the last ``h * w`` tokens are the patch grid and the first
  ``prefix`` ones are class / distillation / register tokens (ViT, DeiT).

Anything else with features is a ``vector``: ``B x C`` (a classifier's output), a ``1 x 1`` map
after global pooling, or tokens whose grid cannot be told. A vector's feature index is its last
dimension (channels for a ``1 x 1`` map), and its value is the maximum over the other dimensions,
as a conv channel's score is its maximum over the map.

Every layout is turned into ``B x C x h x w`` by :func:`to_map` (a view: permute, slice, reshape),
so every algorithm and every panel works on one layout. Gradients have the same shape as the
outputs, so the same function turns them into maps too.
"""

from __future__ import annotations

from typing import Literal

import torch

Layout = Literal["map", "channels_last", "tokens", "vector"]

#: Layouts that are a grid of positions (activation grid, zoomed channel, CAMs).
SPATIAL: tuple[Layout, ...] = ("map", "channels_last", "tokens")

#: How many leading tokens may be class / distillation / register tokens.
MAX_PREFIX = 16


def plausible_grid(h: int, w: int, input_size: tuple[int, int]) -> bool:
    """Whether ``h x w`` could be the input downsampled by one stride (within rounding)."""
    if h < 1 or w < 1:
        return False
    sh, sw = input_size[0] / h, input_size[1] / w
    if sh < 0.99 or sw < 0.99:  # no layer of a classifier upsamples beyond its input
        return False
    ratio = sh / sw
    return 0.7 < ratio < 1.43


def token_grid(
    n: int, input_size: tuple[int, int], hints: list[tuple[int, int]] | None = None
) -> tuple[tuple[int, int], int] | None:
    """The patch grid and prefix count of ``n`` tokens, or None.

    ``hints`` are the grids of spatial layers that ran earlier (a patch embedding's conv output);
    the latest one that leaves at most :data:`MAX_PREFIX` tokens over wins. Otherwise the
    smallest prefix whose remaining tokens factor into a grid of the input's aspect ratio does.
    """
    for h, w in reversed(hints or []):
        if h * w > 1 and 0 <= n - h * w <= MAX_PREFIX:
            return (h, w), n - h * w
    aspect = input_size[0] / input_size[1]
    for prefix in range(0, min(MAX_PREFIX, n - 4) + 1):
        m = n - prefix
        if prefix * 4 > m:  # a handful of extra tokens, not a quarter of the sequence
            break
        best = None
        for h in range(2, int(m**0.5) + 2):
            if m % h:
                continue
            for gh, gw in ((h, m // h), (m // h, h)):
                if gw > 1 and plausible_grid(gh, gw, input_size):
                    score = abs(gh / gw - aspect)
                    if best is None or score < best[0]:
                        best = (score, (gh, gw))
        if best is not None:
            return best[1], prefix
    return None


def classify(
    shape: tuple[int, ...],
    input_size: tuple[int, int],
    channels_last: bool = False,
    hints: list[tuple[int, int]] | None = None,
    grid: tuple[int, int] | None = None,
) -> tuple[Layout | None, tuple[int, int] | None, int]:
    """``(layout, grid, prefix)`` of an output of ``shape`` (without the batch dimension).

    Args:
        shape: the output shape without the batch dimension.
        input_size: the network's input (height, width).
        channels_last: the module is known to put features last (a linear layer).
        hints: grids of earlier spatial layers, for tokens.
        grid: a grid the user gave (``--grid HxW``) for tokens.
    """
    if len(shape) == 1:
        return "vector", None, 0
    if len(shape) == 3:
        first_ok = plausible_grid(shape[1], shape[2], input_size)
        last_ok = plausible_grid(shape[0], shape[1], input_size)
        if channels_last or (last_ok and not first_ok):
            h, w = shape[0], shape[1]
            layout: Layout = "channels_last"
        else:
            h, w = shape[1], shape[2]
            layout = "map"
        if h * w == 1:
            return "vector", None, 0
        return layout, (h, w), 0
    if len(shape) == 2:
        n = shape[0]
        if grid is not None and 0 <= n - grid[0] * grid[1] <= n and grid[0] * grid[1] > 1:
            return "tokens", grid, n - grid[0] * grid[1]
        found = token_grid(n, input_size, hints)
        if found is None:
            return "vector", None, 0
        return "tokens", found[0], found[1]
    return None, None, 0


def to_map(t: torch.Tensor, layout: Layout | None, grid: tuple[int, int] | None, prefix: int = 0) -> torch.Tensor:
    """An output (or its gradient) of ``layout`` as ``B x C x h x w`` (a view where possible)."""
    if layout == "map":
        return t
    if layout == "channels_last":
        return t.permute(0, 3, 1, 2)
    if layout == "tokens" and grid is not None:
        b, _, c = t.shape
        return t[:, prefix:].reshape(b, grid[0], grid[1], c).permute(0, 3, 1, 2)
    raise ValueError(f"a {layout} output is not a feature map")


def to_features(t: torch.Tensor, layout: Layout | None) -> torch.Tensor:
    """An output as ``B x N`` features: the channels of a map, else the last dimension.

    Each feature's value is its maximum over every other dimension (positions or tokens).
    """
    if t.ndim == 2:
        return t
    if layout == "map" or (t.ndim == 4 and t.shape[-1] == 1 and t.shape[-2] == 1):
        return t.flatten(2).amax(dim=2)
    return t.flatten(1, -2).amax(dim=1)


def feature_count(shape: tuple[int, ...], layout: Layout | None) -> int | None:
    """How many channels / features an output of ``shape`` and ``layout`` has."""
    if not shape:
        return None
    if layout == "map" or (len(shape) == 3 and shape[-1] == 1 and shape[-2] == 1):
        return int(shape[0])
    return int(shape[-1])
