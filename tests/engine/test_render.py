"""Rendering helpers: colormaps, normalisation, grids, overlays, packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.engine import render
from convscope.engine.colormaps import COLORMAPS, lut
from convscope.engine.pack import Packer
from convscope.errors import RequestError

CPU = torch.device("cpu")


def test_colormap_tables():
    for name in COLORMAPS:
        table = lut(name, CPU)
        assert table.shape == (256, 3) and table.dtype == torch.uint8
    assert lut("gray", CPU)[:, 0].tolist() == list(range(256))
    jet = lut("jet", CPU)
    assert jet[0].tolist() == [0, 0, 128] and jet[-1].tolist() == [128, 0, 0]  # dark blue -> dark red
    assert lut("viridis", CPU)[0].tolist() == [68, 1, 84] and lut("viridis", CPU)[-1].tolist() == [
        253,
        231,
        37,
    ]
    inferno = lut("inferno", CPU).float().mean(dim=1)
    assert (inferno[1:] >= inferno[:-1] - 1).all()  # perceptually ordered: brightness rises
    with pytest.raises(RequestError, match="unknown colormap"):
        lut("rainbow", CPU)


def test_normalize_and_colorize():
    x = torch.tensor([[2.0, 4.0], [6.0, 10.0]])
    torch.testing.assert_close(render.normalize(x), torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    torch.testing.assert_close(render.normalize(torch.full((2, 2), 3.0)), torch.zeros(2, 2))
    per_row = render.normalize(x, (1,))
    torch.testing.assert_close(per_row, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    rgb = render.colorize(torch.tensor([0.0, 0.5, 1.0]), "gray")
    assert rgb.tolist() == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]


def test_grid_geometry():
    assert render.grid_shape(2048) == (45, 46)
    assert render.grid_shape(64) == (8, 8)
    assert render.grid_shape(1) == (1, 1)
    g = render.mosaic_grid(10, 7, 14, width=200)
    assert (g.rows, g.cols) == (3, 4) and g.tile_w == 50 and g.tile_h == 25  # 49x24 content + 1 px gap
    assert g.width <= 200


def test_tile_places_item_r_c_and_background():
    values = torch.arange(5, dtype=torch.float32).view(1, 5, 1, 1) / 4
    grid = render.Grid(rows=2, cols=3, tile_h=3, tile_w=3, gap=1)
    img = render.tile(values, grid, "gray")[0, ..., 0]
    assert img.shape == (6, 9)
    for item in range(5):
        r, c = divmod(item, 3)
        assert (img[r * 3 : r * 3 + 2, c * 3 : c * 3 + 2] == round(item / 4 * 255)).all()
    assert (img[3:5, 6:8] == 0).all()  # the sixth cell is empty
    assert (img[:, 2] == 0).all()  # gap column


def test_overlay_and_gradient_image():
    heat = torch.full((2, 2, 3), 200, dtype=torch.uint8)
    image = torch.full((2, 2, 3), 100, dtype=torch.uint8)
    assert render.overlay(heat, image).unique().tolist() == [150]
    g = torch.randn(1, 3, 8, 8)
    out = render.gradient_image(g)
    assert out.shape == (1, 8, 8, 3) and out.dtype == torch.uint8
    assert abs(out.float().mean().item() - 127.5) < 3  # centred on mid-grey


def test_packer_round_trip_in_one_buffer():
    p = Packer()
    a = torch.arange(12, dtype=torch.uint8).view(3, 4)
    b = torch.linspace(-1, 1, 5)
    c = torch.tensor([[7, 9]], dtype=torch.int64)
    d = torch.zeros(3, 5)[:, 2]  # strided
    e = torch.zeros(1, 1000)[:, 3]  # one element with a large stride
    for key, t in zip("abcde", (a, b, c, d, e), strict=True):
        p.add(key, t)
    out = p.copy()
    np.testing.assert_array_equal(out["a"], a.numpy())
    np.testing.assert_array_equal(out["b"], b.numpy())
    np.testing.assert_array_equal(out["c"], c.numpy())
    assert out["d"].shape == (3,) and out["e"].shape == (1,)

    def root(v):
        while isinstance(v.base, np.ndarray):
            v = v.base
        return v

    assert len({id(root(v)) for v in out.values()}) == 1  # views of one host buffer: one copy
