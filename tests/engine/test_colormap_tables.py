"""The stored colormap tables are matplotlib's (regenerate with scripts/make_colormaps.py)."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch

from convscope.render.colormaps import COLORMAPS, KINDS, lut


def test_tables_equal_matplotlibs():
    for name in COLORMAPS:
        ref = np.round(matplotlib.colormaps[name].resampled(256)(np.arange(256))[:, :3] * 255).astype(np.uint8)
        assert (lut(name, torch.device("cpu")).numpy() == ref).all(), name


def test_kinds():
    assert {"sequential", "diverging"} <= set(KINDS.values())
    for name, kind in KINDS.items():
        table = lut(name, torch.device("cpu")).float().mean(dim=1)
        if kind == "diverging":  # light in the middle, darker at both ends
            assert table[128] > table[0] and table[128] > table[255], name
