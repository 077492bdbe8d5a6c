"""What a view is: one panel of a frame, from what the pass captured to what the page draws.

A view declares what it needs from the pass (:meth:`View.needs`: layer outputs, gradients),
renders on the device into its own slot of the frame's packed buffer (:meth:`View.render`),
turns its host rows into a :class:`Panel` for the :class:`~convscope.views.result.Result`
(:meth:`View.unpack`), and describes itself for the wire and the page (:meth:`View.describe`).
The engine knows none of this: it runs the pass, calls every active view's ``render``, copies
the buffer to the host once, and calls every view's ``unpack``. The server encodes panels and
``explain`` writes them from the :class:`Panel` protocol alone, so a new view of an existing
panel kind shows up in the dashboard, in ``explain`` and in snapshots with no other edit.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
import torch

from convscope.request import ViewRequest
from convscope.vocabulary import Needs, Rule

if TYPE_CHECKING:
    from convscope.models.layers import LayerInfo

#: How the page draws a panel: ``image`` (one picture), ``grid`` (tiles with click geometry:
#: rows, cols, tile_w, tile_h, count), ``cells`` (a grid of one-colour cells, same geometry),
#: ``bars`` (a ranked list with values).
PanelKind = Literal["image", "grid", "cells", "bars"]

JPEG = "image/jpeg"
PNG = "image/png"
FLOAT32 = "application/x-float32"


def round_sig(x: float, digits: int = 5) -> float | None:
    """``x`` to ``digits`` significant digits for a JSON header; None for inf/nan (JSON has none)."""
    x = float(x)
    return float(f"{x:.{digits}g}") if math.isfinite(x) else None


@dataclass(frozen=True)
class Blob:
    """One binary payload of a panel on the wire: an image (JPEG/PNG) or raw little-endian floats."""

    name: str
    data: np.ndarray
    mime: str


class Panel(Protocol):
    """A view's output for one frame, on the host: what the encoder and the still writers read.

    Attributes:
        view: the name of the view that made it (the key in ``Result.panels``).
        empty: why the panel is drawn blank (all zero, constant, inf/nan), else None.
    """

    view: str
    empty: str | None

    def blobs(self) -> tuple[Blob, ...]:
        """The binary payloads, in the order they travel."""
        ...

    def meta(self) -> Any:
        """The JSON-ready part of the frame header for this panel (None: nothing to say)."""
        ...

    def meta_key(self) -> tuple[str, ...]:
        """Where :meth:`meta` goes in the frame header (``("maps", "gradcam")`` nests it)."""
        ...

    def images(self) -> dict[str, np.ndarray]:
        """HxWx3 uint8 pictures to write as files (``explain``, snapshots), by file-name suffix."""
        ...


class Slot(Protocol):
    """A view's part of the frame's packed device buffer; keys are the view's own business.

    ``add`` queues a device tensor for the frame's one device-to-host copy; ``keep`` passes a
    plain Python value (geometry, a layer name) to :meth:`View.unpack` as it is.
    """

    def add(self, key: str, tensor: torch.Tensor) -> None: ...

    def keep(self, key: str, value: object) -> None: ...


@dataclass
class Frame:
    """What a view sees when it renders, on the device, batch first (``rows`` frames).

    Attributes:
        request: the resolved request (layer names and targets filled in).
        x255: the model input in [0, 255], B x 3 x H x W float.
        image: the same as uint8, what overlays are blended on.
        logits: B x classes, detached.
        top1: B, the index of each row's top-1 class.
        raws: each enabled algorithm's raw map (float32), by algorithm name.
        colormap: the colormap every single-channel picture uses (``gray`` when asked for grey).
    """

    request: ViewRequest
    rows: int
    x255: torch.Tensor
    image: torch.Tensor
    logits: torch.Tensor
    top1: torch.Tensor
    raws: dict[str, torch.Tensor]
    colormap: str
    captured: Mapping[str, torch.Tensor] = field(default_factory=dict)
    layers: Mapping[str, LayerInfo] = field(default_factory=dict)

    def has(self, layer: str | None) -> bool:
        """Whether ``layer``'s output was captured in this pass."""
        return layer is not None and layer in self.captured

    def activation(self, layer: str) -> torch.Tensor:
        """``layer``'s output as a B x C x h x w map, whatever its layout (tokens, channels-last)."""
        return self.layers[layer].as_map(self.captured[layer][: self.rows])

    def features(self, layer: str) -> torch.Tensor:
        """``layer``'s output as B x N features (vectors as they are, maps reduced by max)."""
        return self.layers[layer].as_features(self.captured[layer][: self.rows])


@dataclass(frozen=True)
class HostFrame:
    """What a view sees when it unpacks one row on the host.

    Attributes:
        request: the resolved request.
        labels: the model's class names.
        top1: this row's top-1 class.
        describe_rule: one line on how a backward rule was applied to this model
            (``guided (SiLU: standard)``), from the engine's ReLU hooks.
    """

    request: ViewRequest
    labels: tuple[str, ...]
    top1: int
    describe_rule: Callable[[Rule], str]


class View(ABC):
    """Base class of a registered view (see the module docstring).

    Class attributes:
        name: the view's one name: in ``ViewRequest.panels``, ``Result.panels``, on the wire (the
            blob and header key), on the page (``data-view``) and in file names.
        title: display name.
        kind: how the page draws it (:data:`PanelKind`).
        default: computed when the request does not list panels (``ViewRequest.panels=None``).
        required: always computed (the input and the predictions: every frame has them).
        stills: written by the still-image commands (``explain``) when they are default views.
        order: where the panel comes in a frame (and on the wire); lower first.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    kind: ClassVar[PanelKind] = "image"
    default: ClassVar[bool] = True
    required: ClassVar[bool] = False
    stills: ClassVar[bool] = True
    order: ClassVar[int] = 100

    def needs(self, request: ViewRequest) -> Needs:
        """Layer outputs (and gradients) this view reads from the pass; none by default."""
        return Needs()

    def active(self, request: ViewRequest) -> bool:
        """Whether the view has something to show for this (resolved) request."""
        return True

    @abstractmethod
    def render(self, frame: Frame, slot: Slot) -> None:
        """Draw on the device into ``slot``: every tensor the host side will need, batch first."""

    @abstractmethod
    def unpack(self, host: Mapping[str, Any], row: int, frame: HostFrame) -> Panel:
        """Row ``row`` of what :meth:`render` put in the slot: host numpy arrays (batch first) for
        what it added, the values themselves for what it kept."""

    def describe(self) -> dict:
        """The view for the page's ``hello``: name, title, kind."""
        return {"name": self.name, "title": self.title, "kind": self.kind}

    def __repr__(self) -> str:
        return f"<view {self.name}>"
