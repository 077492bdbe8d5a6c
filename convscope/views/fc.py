"""The FC map: a vector layer's activations as a grid of coloured cells, click one to select it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from convscope import render
from convscope.render import empty_reason
from convscope.request import ViewRequest
from convscope.views.base import FLOAT32, PNG, Blob, Frame, HostFrame, Slot, View, round_sig
from convscope.views.registry import register
from convscope.vocabulary import Needs


@dataclass
class FCMap:
    """A linear layer's activations as a grid of coloured cells; neuron ``r * cols + c`` at (r, c)."""

    layer: str
    image: np.ndarray
    rows: int
    cols: int
    cell: int
    neurons: int
    selected: int | None = None
    selected_value: float | None = None
    value_range: tuple[float, float] = (0.0, 0.0)
    raw: np.ndarray | None = None  # the N activations as float32, only with keep_raw
    empty: str | None = None  # why the map is blank (all zero, constant, inf/nan); from value_range
    view: str = "fc"
    values: np.ndarray | None = None  # every neuron's value (float32) for the page's hover, up to MAX_VALUES neurons

    def __post_init__(self) -> None:
        if self.empty is None:
            self.empty = empty_reason(*self.value_range)

    def blobs(self) -> tuple[Blob, ...]:
        blobs = (Blob(self.view, self.image, PNG),)  # PNG: JPEG would smear the one-colour cells
        if self.values is not None:  # "fc_values": the hover tooltip's value of every neuron
            blobs += (Blob(f"{self.view}_values", np.ascontiguousarray(self.values, dtype="<f4"), FLOAT32),)
        return blobs

    def meta(self) -> Any:
        return {
            "layer": self.layer, "rows": self.rows, "cols": self.cols, "cell": self.cell, "neurons": self.neurons,
            "selected": self.selected,
            "selected_value": None if self.selected_value is None else round_sig(self.selected_value),
            "value_range": [round_sig(v) for v in self.value_range],
            "width": int(self.image.shape[1]), "height": int(self.image.shape[0]), "empty": self.empty,
            "values": self.values is not None,
        }

    def meta_key(self) -> tuple[str, ...]:
        return (self.view,)

    def images(self) -> dict[str, np.ndarray]:
        return {"": self.image}


#: Layers up to this many neurons send every value with each frame (4 bytes each, 16 KB at most)
#: for the FC map's hover tooltip; wider layers send the selected neuron's value only.
MAX_VALUES = 4096


@register
class FCView(View):
    name = "fc"
    title = "FC"
    kind = "cells"
    order = 40
    stills = False

    def needs(self, request: ViewRequest) -> Needs:
        return Needs(activations=(request.fc_layer,)) if request.fc_layer else Needs()

    def active(self, request: ViewRequest) -> bool:
        return request.fc_layer is not None

    def render(self, frame: Frame, slot: Slot) -> None:
        req = frame.request
        if not frame.has(req.fc_layer):
            return
        v = frame.features(req.fc_layer).float()
        grid = render.fc_grid(v.shape[1], req.fc_cell)
        slot.keep("grid", grid)
        slot.keep("layer", req.fc_layer)
        slot.keep("selected", req.neuron)
        slot.keep("neurons", v.shape[1])
        slot.add("image", render.cells(render.normalize(v, (1,)), grid, frame.colormap))
        slot.add("range", torch.stack([v.amin(dim=1), v.amax(dim=1)], dim=1))
        if req.neuron is not None:
            slot.add("value", v[:, req.neuron])
        if req.keep_raw:
            slot.add("raw", v)
        if v.shape[1] <= MAX_VALUES:
            slot.add("values", v)

    def unpack(self, host: Mapping[str, Any], row: int, frame: HostFrame) -> FCMap | None:
        if "image" not in host:
            return None
        grid: render.Grid = host["grid"]
        lo, hi = (float(x) for x in host["range"][row])
        return FCMap(
            host["layer"], host["image"][row], grid.rows, grid.cols, grid.tile_w, host["neurons"], host["selected"],
            float(host["value"][row]) if "value" in host else None, (lo, hi),
            host["raw"][row] if "raw" in host else None,
            values=host["values"][row] if "values" in host else None,
        )

