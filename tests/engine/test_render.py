"""Rendering helpers: colormaps, normalisation, grids, overlays, packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope import render
from convscope.engine.pack import Packer
from convscope.errors import RequestError
from convscope.render.colormaps import COLORMAPS, lut

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


# ---- any magnitude, and blank maps named rather than drawn silently -------------------------------
SCALES = (1e-30, 1e-12, 1.0, 1e19, 1e30)


def _structured(shape, seed=0):
    """A smooth blob plus noise: a map with structure at every scale of colour."""
    g = torch.Generator().manual_seed(seed)
    h, w = shape[-2:]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    blob = torch.exp(-((xx - 0.3) ** 2 + (yy + 0.2) ** 2) * 4)
    return blob + 0.2 * torch.rand(shape, generator=g)


def _levels(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a.int() - b.int()).abs().max())


def test_heatmap_is_the_same_picture_at_any_scale():
    m = _structured((2, 14, 14))
    ref = render.colorize(render.normalize(m, (-2, -1)), "jet")
    assert ref.float().std() > 20  # a real picture, not one colour
    for s in SCALES:
        out = render.colorize(render.normalize(m * s, (-2, -1)), "jet")
        assert _levels(out, ref) <= 1, s
    # per map: one tiny and one huge map in the same batch both come out whole
    mixed = torch.stack([m[0] * 1e-30, m[1] * 1e30])
    assert _levels(render.colorize(render.normalize(mixed, (-2, -1)), "jet"), ref) <= 1
    # negative maps and offsets: min-max as before
    x = torch.tensor([[2.0, 4.0], [6.0, 10.0]])
    for s in (-1e-30, 1e-30, 1e30):
        torch.testing.assert_close(render.normalize(x * s), render.normalize(x) if s > 0 else 1 - render.normalize(x))


def test_gradient_image_is_the_same_picture_at_any_scale_and_never_overflows():
    g = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * _structured((2, 1, 32, 32))
    ref = render.gradient_image(g)
    # the documented rendering, written out in float64: 127.5 + 25.5 * (g - mean) / std per image
    d = g.double().flatten(1)
    z = 127.5 + 25.5 * (d - d.mean(1, keepdim=True)) / d.std(1, keepdim=True)
    expected = z.clamp(0, 255).round().to(torch.uint8).reshape(g.shape).movedim(1, -1)
    assert _levels(ref, expected) <= 1
    assert ref.float().std() > 15
    for s in SCALES:
        out = render.gradient_image(g * s)
        assert _levels(out, ref) <= 1, s
    # the inception_v3 case: guided Grad-CAM near 1e19; the float32 sum of squares is inf
    big = g * 1.6e19
    assert torch.isinf((big * big).sum())
    assert _levels(render.gradient_image(big), ref) <= 1


def test_magnitude_and_value_range_at_any_scale():
    g = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    ref = render.colorize(render.normalize(render.magnitude(g), (-2, -1)), "viridis")
    for s in SCALES:
        out = render.colorize(render.normalize(render.magnitude(g * s), (-2, -1)), "viridis")
        assert _levels(out, ref) <= 1, s
        lo, hi = render.value_range(g * s, (-3, -2, -1))
        assert lo.shape == (1,) and torch.isfinite(lo).all() and torch.isfinite(hi).all()
        assert float(lo) == float((g * s).min()) and float(hi) == float((g * s).max())


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (torch.zeros(2, 6, 6), "all zero"),
        (torch.full((2, 6, 6), 0.25), "constant"),
        (torch.full((2, 6, 6), -3e20), "constant"),
        (torch.full((2, 6, 6), 1.0) + torch.rand(2, 6, 6) * 1e-8, "constant"),  # float32 noise only
        (torch.where(torch.rand(2, 6, 6) > 0.5, torch.nan, 1.0), "non-finite"),
        (torch.where(torch.arange(36).view(6, 6) == 7, torch.inf, torch.rand(2, 6, 6)), "non-finite"),
        (torch.full((2, 6, 6), -torch.inf), "non-finite"),
    ],
)
def test_blank_maps_are_drawn_flat_and_named(values, reason):
    lo, hi = render.value_range(values, (-2, -1))
    for b in range(2):
        assert render.empty_reason(float(lo[b]), float(hi[b])).startswith(reason)
    flat = render.normalize(values, (-2, -1))
    assert torch.equal(flat, torch.zeros_like(flat))  # one colour, no nan reaching the colour table
    assert render.colorize(flat, "jet").reshape(-1, 3).unique(dim=0).tolist() == [[0, 0, 128]]  # jet's lowest
    grads = values.view(2, 1, 6, 6).expand(2, 3, 6, 6)
    assert render.gradient_image(grads).unique().tolist() == [128]
    tiles = render.tile(render.normalize(values.unsqueeze(0), (-2, -1)), render.mosaic_grid(2, 6, 6, 40), "gray")
    assert int(tiles.max()) == 0


def test_empty_reason_agrees_with_what_is_drawn():
    assert render.empty_reason(0.0, 0.0) == render.ALL_ZERO
    assert render.empty_reason(1e-38, 2e-38) is None  # tiny but structured
    assert render.empty_reason(-1e30, 1e30) is None
    assert render.empty_reason(0.0, float("nan")) == render.NON_FINITE
    assert render.empty_reason(2.5, 2.5) == "constant: every value is 2.5"
    for span in (1e-7, 1e-5):  # just below and above the threshold, relative to the magnitude
        x = torch.tensor([1e20, 1e20 * (1 + span)], dtype=torch.float64).float()
        drawn = bool(render.normalize(x).max() > 0)
        assert drawn == (render.empty_reason(float(x.min()), float(x.max())) is None), span


def test_normalize_keeps_structure_on_a_large_offset():
    """An activation of 1000 + a spread of 0.1 (1e-4 of its magnitude): min-max in float64 is the reference."""
    m = 1000.0 + 0.1 * _structured((1, 16, 16))
    ref = ((m.double() - m.double().min()) / (m.double().max() - m.double().min()) * 255).round()
    got = (render.normalize(m, (-2, -1)) * 255).round().double()
    assert (got - ref).abs().max() <= 1
