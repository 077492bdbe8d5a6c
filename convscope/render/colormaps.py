"""Colormaps as 256x3 uint8 lookup tables, built once per device and applied with one gather.

``jet`` follows the classic piecewise-linear definition; ``viridis`` and ``inferno`` (CC0, by
Stefan van der Walt and Nathaniel Smith) are interpolated from 17 evenly spaced anchor colours,
which keeps them within a few grey levels of the full tables without a plotting dependency.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from convscope.errors import RequestError, suggest

_ANCHORS = {
    "viridis": "440154 48186a 472d7b 424086 3b528b 33638d 2c728e 26828e 21918c 1fa088 28ae80 3fbc73 "
    "5ec962 84d44b addc30 d8e219 fde725",
    "inferno": "000004 0b0724 210c4a 3d0965 57106e 71196e 8a226a a32c61 bc3754 d24644 e45a31 f1731d "
    "f98e09 fcac11 f9cb35 f2ea69 fcffa4",
}
# (position, value) breakpoints per channel of the classic jet map.
_JET = (
    ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
)

COLORMAPS = ("jet", "viridis", "inferno", "gray")


def _table(name: str) -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    if name == "gray":
        rgb = np.stack([x, x, x], axis=1)
    elif name == "jet":
        rgb = np.stack([np.interp(x, *zip(*points, strict=True)) for points in _JET], axis=1)
    else:
        anchors = (
            np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in _ANCHORS[name].split()]) / 255.0
        )
        pos = np.linspace(0.0, 1.0, len(anchors))
        rgb = np.stack([np.interp(x, pos, anchors[:, c]) for c in range(3)], axis=1)
    return np.round(rgb * 255.0).astype(np.uint8)


def check_colormap(name: str) -> str:
    """Return ``name`` if it is a known colormap, else raise a one-line :class:`RequestError`."""
    if name not in COLORMAPS:
        raise RequestError(
            f"unknown colormap {name!r}: use one of {', '.join(COLORMAPS)}{suggest(name, COLORMAPS)}"
        )
    return name


@cache
def lut(name: str, device: torch.device) -> torch.Tensor:
    """The 256x3 uint8 table of colormap ``name`` on ``device`` (cached)."""
    return torch.from_numpy(_table(check_colormap(name))).to(device)
