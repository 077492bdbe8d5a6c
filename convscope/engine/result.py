"""``Result``: what one frame produced, already on the host, ready to encode."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convscope.engine.render import NON_FINITE, empty_reason
from convscope.engine.request import Target


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


@dataclass
class Mosaic:
    """The activation grid of one conv layer: channel ``r * cols + c`` is the tile at row r, column c.

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

    def __post_init__(self) -> None:
        if self.empty is None and len(self.ranges):
            r = np.asarray(self.ranges, dtype=np.float64)
            bad = int((~np.isfinite(r)).any(axis=-1).sum())
            if bad:
                self.empty = NON_FINITE if bad == len(r) else f"{NON_FINITE} in {bad} of {len(r)} channels"
            else:
                self.empty = empty_reason(r[:, 0].min(), r[:, 1].max())


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

    def __post_init__(self) -> None:
        if self.empty is None:
            self.empty = empty_reason(*self.value_range)


@dataclass
class MapOutput:
    """One algorithm's output for one target.

    Attributes:
        image: HxWx3 uint8 at the input size (heatmap for CAMs, the visualised gradient otherwise).
        overlay: HxWx3 uint8 heatmap blended over the input (CAM-like maps), else None.
        raw: the map before any normalisation (float32), only when ``keep_raw`` was asked:
            Grad-CAM at the layer's resolution after the weighted sum and ReLU (h x w), input
            gradients as 3xHxW.
        rule: the backward rule applied (``standard``, ``guided``, or e.g.
            ``guided (SiLU: standard)`` when some activations had no guided rule).
        empty: None when the map has something to show, else why it is drawn blank: ``all zero:
            ...``, ``constant: ...`` or ``non-finite values (inf/nan)``
            (:func:`convscope.engine.render.empty_reason`).
        value_range: ``(min, max)`` of the raw map (before any normalisation).
    """

    algorithm: str
    target: Target
    layer: str | None
    image: np.ndarray
    overlay: np.ndarray | None = None
    raw: np.ndarray | None = None
    rule: str = "standard"
    empty: str | None = None
    value_range: tuple[float, float] | None = None


@dataclass
class Result:
    """Everything one ``Engine.run`` call produced; every array is host memory."""

    input: np.ndarray  # HxWx3 uint8: the model input as the network sees it (after resize/crop)
    predictions: list[Prediction]
    activations: Mosaic | None = None
    channel: np.ndarray | None = None  # the selected channel enlarged, HxWx3 uint8
    channel_index: int | None = None
    fc: FCMap | None = None
    maps: dict[str, MapOutput] = field(default_factory=dict)
    input_tensor: np.ndarray | None = None  # 1x3xHxW float32, only with keep_raw
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def channel_empty(self) -> str | None:
        """Why the zoomed channel is blank (all zero, constant, inf/nan), from the grid's ranges.

        None when it has something to show, or when the activation grid was not computed.
        """
        a, c = self.activations, self.channel_index
        if self.channel is None or a is None or c is None or not 0 <= c < len(a.ranges):
            return None
        return empty_reason(*a.ranges[c])
