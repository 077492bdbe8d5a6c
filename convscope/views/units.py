"""The unit explorer's live side: every frame, one top-k update for every channel of the grid layer.

The view draws nothing itself: its :meth:`UnitsView.render` feeds the grid layer's activation and
the frame as the model saw it to the dashboard's :class:`~convscope.units.session.UnitsSession`
(on the device: per-channel max and position, receptive-field box, crops by ``roi_align``), and
its panel puts a small summary in the frame header (``units``: layer, frames seen, where the top
patches come from, the update's median time). The page asks for a channel's patches, histogram,
the layer overview and the feature visualisation with ``units`` messages
(:mod:`convscope.server.unit_commands`) and draws them with ``static/units.js``.

Only engines a session is bound to (:func:`bind`, done by the dashboard) pay anything: elsewhere
(``explain``, ``bench``, the Python API) ``render`` returns at once and the panel is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convscope.views.activations import GridLayerView
from convscope.views.base import Blob, Frame, HostFrame, Slot
from convscope.views.registry import register

if TYPE_CHECKING:
    from convscope.units.session import UnitsSession

_SESSIONS: dict[int, tuple[Mapping, UnitsSession]] = {}


def bind(layers: Mapping, session: UnitsSession) -> None:
    """Feed frames whose ``Frame.layers`` is ``layers`` (one engine's ``layer_info``) to ``session``."""
    _SESSIONS[id(layers)] = (layers, session)  # the mapping itself is kept: its id stays unique


def unbind(layers: Mapping) -> None:
    _SESSIONS.pop(id(layers), None)


def session_for(layers: Mapping) -> UnitsSession | None:
    found = _SESSIONS.get(id(layers))
    return found[1] if found is not None and found[0] is layers else None


@dataclass
class UnitsSummary:
    layer: str
    frames: int
    source: str
    update_ms: float | None
    view: str = "units"
    empty: str | None = None

    def blobs(self) -> tuple[Blob, ...]:
        return ()

    def meta(self) -> Any:
        return {"layer": self.layer, "frames": self.frames, "source": self.source, "update_ms": self.update_ms}

    def meta_key(self) -> tuple[str, ...]:
        return (self.view,)

    def images(self) -> dict:
        return {}


@register
class UnitsView(GridLayerView):
    name = "units"
    title = "Units"
    kind = "units"  # drawn by static/units.js
    order = 35
    stills = False

    def render(self, frame: Frame, slot: Slot) -> None:
        session = session_for(frame.layers)
        layer = frame.request.conv_layer
        if session is None or not frame.has(layer):
            return
        info = frame.layers[layer]  # type: ignore[index]
        if not info.channels:
            return
        session.observe(info, frame.activation(layer), frame.x255[: frame.rows].detach())  # type: ignore[arg-type]
        slot.keep("summary", session.summary(layer))  # type: ignore[arg-type]

    def unpack(self, host: Mapping[str, Any], row: int, frame: HostFrame) -> UnitsSummary | None:
        if "summary" not in host:
            return None
        return UnitsSummary(**host["summary"])
