"""The zoomed channel: the selected channel of the activation grid's layer, enlarged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from convscope import render
from convscope.render import empty_reason
from convscope.views.activations import GridLayerView, channel_range, normalized
from convscope.views.base import JPEG, Blob, Frame, HostFrame, Slot
from convscope.views.registry import register


@dataclass
class Zoom:
    """One channel of ``layer`` enlarged to about ``zoom_size`` wide (``Result.channel`` is ``image``).

    Attributes:
        empty: why it is blank (all zero, constant, inf/nan), from the channel's raw range.
        value_range: the channel's raw ``(min, max)``.
    """

    layer: str
    index: int
    image: np.ndarray
    value_range: tuple[float, float]
    empty: str | None = None
    view: str = "channel"

    def __post_init__(self) -> None:
        if self.empty is None:
            self.empty = empty_reason(*self.value_range)

    def blobs(self) -> tuple[Blob, ...]:
        return (Blob(self.view, self.image, JPEG),)

    def meta(self) -> Any:
        return {"index": self.index, "empty": self.empty}

    def meta_key(self) -> tuple[str, ...]:
        return (self.view,)

    def images(self) -> dict[str, np.ndarray]:
        return {"": self.image}


@register
class ChannelView(GridLayerView):
    name = "channel"
    title = "Channel"
    kind = "image"
    order = 30
    stills = False

    def render(self, frame: Frame, slot: Slot) -> None:
        req = frame.request
        if not frame.has(req.conv_layer):
            return
        a = frame.activation(req.conv_layer).float()
        if req.normalize == "channel":  # only the selected channel's range matters
            a = a[:, req.channel : req.channel + 1]
            lo, hi = channel_range(a)
            a01 = normalized(a, lo, hi, req.normalize)[:, 0]
        else:
            lo, hi = channel_range(a)
            a01 = normalized(a, lo, hi, req.normalize)[:, req.channel]
            lo, hi = lo[:, req.channel : req.channel + 1], hi[:, req.channel : req.channel + 1]
        h, w = a.shape[-2:]
        size = (max(1, round(req.zoom_size * h / w)), req.zoom_size)
        slot.keep("layer", req.conv_layer)
        slot.keep("index", req.channel)
        slot.add("image", render.zoom(a01, size, frame.colormap))
        slot.add("range", torch.stack([lo[:, 0, 0, 0], hi[:, 0, 0, 0]], dim=-1))

    def unpack(self, host: Mapping[str, Any], row: int, frame: HostFrame) -> Zoom | None:
        if "image" not in host:
            return None
        lo, hi = (float(v) for v in host["range"][row])
        return Zoom(host["layer"], host["index"], host["image"][row], (lo, hi))
