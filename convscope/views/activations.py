"""The activation grid: every channel of one feature map as a tile, click a tile to select it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from convscope import render
from convscope.render import NON_FINITE, empty_reason
from convscope.request import ViewRequest
from convscope.views.base import FLOAT32, JPEG, Blob, Frame, HostFrame, Slot, View
from convscope.views.registry import register
from convscope.vocabulary import Needs


@dataclass
class ActivationGrid:
    """The activation grid of one layer: channel ``r * cols + c`` is the tile at row r, column c.

    Attributes:
        image: HxWx3 uint8, ``rows * tile_h`` by ``cols * tile_w`` (tiles may carry a 1 px gap
            included in tile_h / tile_w).
        ranges: Cx2 float32, the (min, max) of each channel's raw activation (for hover text).
        raw: C x h x w float32 activations before normalisation, only with ``keep_raw``.
        empty: why the whole grid is blank (the layer's output is all zero, constant, or holds
            inf/nan in some channels), else None; derived from ``ranges`` when not given.
    """

    layer: str
    image: np.ndarray
    rows: int
    cols: int
    tile_h: int
    tile_w: int
    channels: int
    ranges: np.ndarray
    raw: np.ndarray | None = None
    empty: str | None = None
    view: str = "activations"

    def __post_init__(self) -> None:
        if self.empty is None and len(self.ranges):
            r = np.asarray(self.ranges, dtype=np.float64)
            bad = int((~np.isfinite(r)).any(axis=-1).sum())
            if bad:
                self.empty = NON_FINITE if bad == len(r) else f"{NON_FINITE} in {bad} of {len(r)} channels"
            else:
                self.empty = empty_reason(r[:, 0].min(), r[:, 1].max())

    def blobs(self) -> tuple[Blob, ...]:
        ranges = np.ascontiguousarray(self.ranges, dtype="<f4")
        return (Blob(self.view, self.image, JPEG), Blob("ranges", ranges, FLOAT32))

    def meta(self) -> Any:
        return {
            "layer": self.layer, "rows": self.rows, "cols": self.cols, "tile_h": self.tile_h,
            "tile_w": self.tile_w, "channels": self.channels,
            "width": int(self.image.shape[1]), "height": int(self.image.shape[0]), "empty": self.empty,
        }

    def meta_key(self) -> tuple[str, ...]:
        return (self.view,)

    def images(self) -> dict[str, np.ndarray]:
        return {"": self.image}


def channel_range(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(lo, hi)`` of a B x C x h x w map, as B x C x 1 x 1."""
    lo, hi = a.amin(dim=(-2, -1), keepdim=True), a.amax(dim=(-2, -1), keepdim=True)
    return lo, hi


def normalized(a: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, mode: str) -> torch.Tensor:
    """``a`` in [0, 1], per channel or over the whole layer (``ViewRequest.normalize``)."""
    if mode == "channel":
        return render.normalize(a, lo=lo, hi=hi)
    return render.normalize(a, lo=lo.amin(dim=1, keepdim=True), hi=hi.amax(dim=1, keepdim=True))


class GridLayerView(View):
    """A view of the activation grid's layer (``ViewRequest.conv_layer``): the grid and its zoom."""

    def needs(self, request: ViewRequest) -> Needs:
        return Needs(activations=(request.conv_layer,)) if request.conv_layer else Needs()

    def active(self, request: ViewRequest) -> bool:
        return request.conv_layer is not None


@register
class ActivationsView(GridLayerView):
    name = "activations"
    title = "Activations"
    kind = "grid"
    order = 20
    stills = False

    def render(self, frame: Frame, slot: Slot) -> None:
        req = frame.request
        if not frame.has(req.conv_layer):
            return
        a = frame.activation(req.conv_layer).float()
        lo, hi = channel_range(a)
        grid = render.mosaic_grid(a.shape[1], a.shape[2], a.shape[3], req.mosaic_width)
        slot.keep("grid", grid)
        slot.keep("layer", req.conv_layer)
        slot.add("image", render.tile(normalized(a, lo, hi, req.normalize), grid, frame.colormap))
        slot.add("ranges", torch.stack([lo[..., 0, 0], hi[..., 0, 0]], dim=-1))
        if req.keep_raw:
            slot.add("raw", a)

    def unpack(self, host: Mapping[str, Any], row: int, frame: HostFrame) -> ActivationGrid | None:
        if "image" not in host:
            return None
        grid: render.Grid = host["grid"]
        ranges = host["ranges"][row]
        return ActivationGrid(host["layer"], host["image"][row], grid.rows, grid.cols, grid.tile_h, grid.tile_w,
                      len(ranges), ranges, host["raw"][row] if "raw" in host else None)
