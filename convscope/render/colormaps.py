"""Colormaps as 256x3 uint8 lookup tables, built once per device and applied with one gather.

The tables are matplotlib's own (``jet``, ``viridis``, ``inferno``, ``coolwarm`` ...), sampled by
``scripts/make_colormaps.py`` into :mod:`convscope.render.colormap_tables`, so rendering needs no
plotting library at run time. :data:`KINDS` says which are sequential (for magnitudes), diverging
(for signed values, zero in the middle) or classic rainbow maps.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from convscope.errors import RequestError, suggest
from convscope.render.colormap_tables import KINDS, TABLES

COLORMAPS = tuple(TABLES)


def _table(name: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex("".join(TABLES[name])), dtype=np.uint8).reshape(256, 3).copy()


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


__all__ = ["COLORMAPS", "KINDS", "check_colormap", "lut"]
