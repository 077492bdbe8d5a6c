"""On-device presentation: normalise, colour, resize, tile and blend, all in torch.

Algorithms return raw float maps; everything that turns them into pictures lives here so the
CLI, the server and the engine share one implementation. Tiling is a single gather through a
cached index map (nearest-neighbour enlargement and grid layout in one step), so a mosaic of
2048 channels costs one indexing op, not a Python loop over channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from convscope.render.colormaps import lut

#: A map whose values span less than this fraction of its largest magnitude is drawn flat: in
#: float32 (7 significant digits) such a spread is rounding noise, not structure.
REL_SPAN = 1e-6

ALL_ZERO = "all zero: this layer/target gives no signal"
CONSTANT = "constant"
NON_FINITE = "non-finite values (inf/nan)"


def _minmax(x: torch.Tensor, dims: tuple[int, ...] | None, keepdim: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(min, max)`` of ``x`` over ``dims`` (all when None).

    ``amin`` and ``amax`` separately: on CPU ``torch.aminmax`` is about 10x slower than both.
    """
    if dims is None:
        lo, hi = x.amin(), x.amax()
        if keepdim:
            lo, hi = lo.reshape([1] * x.ndim), hi.reshape([1] * x.ndim)
        return lo, hi
    return x.amin(dim=dims, keepdim=keepdim), x.amax(dim=dims, keepdim=keepdim)


def value_range(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map ``(min, max)`` over the trailing ``dims`` (no kept dims): one cheap reduction.

    The engine packs these with the images, so the host can tell a blank map from a real one
    (:func:`empty_reason`) without another device sync.
    """
    return _minmax(x, dims, keepdim=False)


def empty_reason(lo: float, hi: float) -> str | None:
    """Why a map with this value range is drawn blank, or None when it has something to show.

    ``all zero`` / ``constant`` (the spread is below :data:`REL_SPAN` of the largest magnitude,
    what :func:`normalize` draws flat) / ``non-finite values``. Evaluated on the host in float64
    from the packed per-map range, with the same rule the device applied when it drew the map.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return NON_FINITE
    scale = max(abs(lo), abs(hi))
    if scale == 0.0:
        return ALL_ZERO
    if hi - lo <= REL_SPAN * scale:
        return f"{CONSTANT}: every value is {lo:.4g}"
    return None


def _scale_and_gain(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map ``(scale, gain)``: ``scale`` the largest magnitude, ``gain = scale / (hi - lo)``.

    The span is measured as ``hi / scale - lo / scale`` (in [0, 2] for any float32 map, 1e-30 or
    1e30 alike). ``gain`` is 0 for a constant map (span below :data:`REL_SPAN`) and nan for an
    all-zero or non-finite one (0/0, inf/inf), so the caller's final ``nan_to_num_`` draws every
    blank map flat without a branch per map: a handful of ops on one value per map, since each
    small op costs microseconds on its own.
    """
    scale = torch.maximum(lo.abs(), hi.abs())
    span = hi / scale - lo / scale  # in [0, 2], or nan
    return scale, (span > REL_SPAN).div(span)


def normalize(
    x: torch.Tensor,
    dims: tuple[int, ...] | None = None,
    lo: torch.Tensor | None = None,
    hi: torch.Tensor | None = None,
) -> torch.Tensor:
    """Min-max scale ``x`` to [0, 1] over ``dims`` (all dims when None), for any magnitude.

    The scale factor is computed from the range divided by the largest magnitude, so a map times
    1e-30 or 1e30 gives the same picture, with no fixed threshold and no overflow. A map that is
    all zero, constant (see :data:`REL_SPAN`) or holds inf/nan becomes 0 everywhere;
    :func:`empty_reason` names which.
    ``lo`` / ``hi`` (broadcastable to ``x``) skip the reductions when the caller has them.
    """
    if lo is None or hi is None:
        lo, hi = _minmax(x, dims, keepdim=True)
    scale, gain = _scale_and_gain(lo, hi)
    # (x - lo) is exact for close values (no precision lost to an offset). gain / scale is finite
    # down to scales of ~1e-32 for nearly flat maps (gain up to 1 / REL_SPAN) and ~3e-39 for the
    # rest; past that, and for an overflowing x - lo (|x| > 1.7e38, mixed signs), values saturate
    # to 0 or 1 instead of turning into nan.
    return (x - lo).mul_(gain / scale).nan_to_num_(0.0, 1.0, 0.0)


def colorize(x01: torch.Tensor, colormap: str) -> torch.Tensor:
    """Map values in [0, 1] to RGB uint8 through a colormap LUT: shape ``(..., 3)``."""
    table = lut(colormap, x01.device)
    idx = (x01 * 255.0).clamp_(0.0, 255.0).round_().long()
    return gather_rows(table, idx)


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a 2-D table: ``index_select`` is several times faster on CPU."""
    return table.index_select(0, index.reshape(-1)).reshape(*index.shape, table.shape[-1])


def to_uint8_image(x255: torch.Tensor) -> torch.Tensor:
    """A ``(..., 3, H, W)`` float image on the 0..255 scale as ``(..., H, W, 3)`` uint8."""
    return x255.round().clamp_(0, 255).to(torch.uint8).movedim(-3, -1).contiguous()


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize the last two dims of ``x`` (any leading dims) to ``size``."""
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:])
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(flat, size=size, mode=mode, **kwargs)
    return out.reshape(*lead, *size)


def overlay(heat: torch.Tensor, image: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Blend an RGB uint8 heatmap over an RGB uint8 image of the same shape."""
    a = round(alpha * 256)
    out = (heat.to(torch.int32) * a + image.to(torch.int32) * (256 - a) + 128) >> 8
    return out.to(torch.uint8)


def gradient_image(g: torch.Tensor, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None) -> torch.Tensor:
    """Visualise ``(..., 3, H, W)`` input gradients as RGB uint8 ``(..., H, W, 3)``.

    Centred on the mean, scaled by 0.1 per standard deviation around mid-grey (the usual guided
    backprop rendering), per image. Scale-free: each image is divided by its largest magnitude
    before the mean and variance, so gradients of 1e-30 or 1e19 give the same picture and the
    variance cannot overflow float32. A blank image (all zero, constant, non-finite: see
    :func:`empty_reason`) is drawn mid-grey. ``lo`` / ``hi``: the per-image range when known
    (shape ``(...)``, as :func:`value_range` over the last three dims returns it).
    """
    flat = g.flatten(-3)
    if lo is None or hi is None:
        lo, hi = flat.amin(dim=-1), flat.amax(dim=-1)
    scale = torch.maximum(lo.abs(), hi.abs())
    y = flat / scale[..., None]  # in [-1, 1]: sums of squares stay finite (nan for a blank image)
    y = y.sub_(y.mean(dim=-1, keepdim=True))
    # two-pass variance (of the centred values): no cancellation; vector_norm is the fastest sum of squares
    std = torch.linalg.vector_norm(y, dim=-1) / math.sqrt(max(flat.shape[-1] - 1, 1))
    drawn = (hi - lo).div_(scale) > REL_SPAN  # what empty_reason calls constant is drawn grey
    factor = drawn.div(std).mul_(25.5)  # 0.1 * 255 per standard deviation; 0 or nan when blank
    z = y.mul_(factor[..., None]).add_(127.5).nan_to_num_(127.5, 127.5, 127.5)
    z = z.clamp_(0.0, 255.0).round_().reshape(g.shape)
    return z.to(torch.uint8).movedim(-3, -1).contiguous()


def magnitude(g: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` gradients -> ``(..., H, W)`` max absolute value over colour channels.

    No squares, so no overflow; :func:`normalize` then copes with any magnitude.
    """
    return g.abs().amax(dim=-3)


def grid_shape(n: int) -> tuple[int, int]:
    """Near-square ``(rows, cols)`` for ``n`` items: ``cols = ceil(sqrt(n))``."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


@dataclass(frozen=True)
class Grid:
    """Geometry of a tiled image: item ``r * cols + c`` fills the tile at row r, column c.

    ``tile_h`` / ``tile_w`` include the ``gap`` pixels at the right and bottom of each tile, so
    a click at (x, y) is item ``(y // tile_h) * cols + x // tile_w``.
    """

    rows: int
    cols: int
    tile_h: int
    tile_w: int
    gap: int

    @property
    def height(self) -> int:
        return self.rows * self.tile_h

    @property
    def width(self) -> int:
        return self.cols * self.tile_w


def mosaic_grid(channels: int, h: int, w: int, width: int, gap: int = 1) -> Grid:
    """Tile geometry for ``channels`` maps of ``h x w`` in an image about ``width`` pixels wide."""
    rows, cols = grid_shape(channels)
    content_w = max(1, width // cols - gap)
    content_h = max(1, round(content_w * h / w))
    return Grid(rows, cols, content_h + gap, content_w + gap, gap)


@lru_cache(maxsize=32)
def _tile_index(n: int, h: int, w: int, grid: Grid, device: torch.device) -> torch.Tensor:
    """``(H, W)`` long indices into a flat ``n*h*w (+1 background)`` vector, nearest sampling."""
    ch, cw = grid.tile_h - grid.gap, grid.tile_w - grid.gap
    pix = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    within = F.interpolate(pix, size=(ch, cw), mode="nearest-exact").reshape(ch, cw).long()
    background = n * h * w
    tile = torch.full((grid.tile_h, grid.tile_w), background, dtype=torch.long)
    out = torch.full((grid.rows, grid.cols, grid.tile_h, grid.tile_w), background, dtype=torch.long)
    for item in range(n):  # built once per geometry and cached, never per frame
        tile[:ch, :cw] = within + item * h * w
        out[item // grid.cols, item % grid.cols] = tile
    return out.permute(0, 2, 1, 3).reshape(grid.height, grid.width).to(device)


def tile(values01: torch.Tensor, grid: Grid, colormap: str) -> torch.Tensor:
    """Lay out ``(B, N, h, w)`` maps in [0, 1] on ``grid``: ``(B, H, W, 3)`` uint8, black gaps.

    Each map is enlarged by nearest neighbour (every activation stays a visible block). Colours
    are looked up on the small maps first, then one gather places them.
    """
    b, n, h, w = values01.shape
    index = _tile_index(n, h, w, grid, values01.device)
    rgb = colorize(values01.reshape(b, n * h * w), colormap)
    rgb = torch.cat([rgb, rgb.new_zeros(b, 1, 3)], dim=1)  # + a black background entry
    if b > 1:
        index = index + torch.arange(b, device=index.device).view(b, 1, 1) * (n * h * w + 1)
    return gather_rows(rgb.reshape(-1, 3), index).reshape(b, grid.height, grid.width, 3)


def zoom(values01: torch.Tensor, size: tuple[int, int], colormap: str) -> torch.Tensor:
    """Enlarge ``(B, h, w)`` maps in [0, 1] to ``size`` by nearest neighbour: ``(B, H, W, 3)`` uint8."""
    grid = Grid(1, 1, size[0], size[1], 0)
    return tile(values01.unsqueeze(1), grid, colormap)


def fc_grid(neurons: int, cell: int) -> Grid:
    """Near-square grid of ``cell``-pixel cells for a layer of ``neurons`` values."""
    rows, cols = grid_shape(neurons)
    cell = max(1, cell)
    return Grid(rows, cols, cell, cell, 1 if cell >= 4 else 0)


def cells(values01: torch.Tensor, grid: Grid, colormap: str) -> torch.Tensor:
    """``(B, N)`` values in [0, 1] as coloured cells on ``grid``: ``(B, H, W, 3)`` uint8."""
    return tile(values01.reshape(values01.shape[0], -1, 1, 1), grid, colormap)
