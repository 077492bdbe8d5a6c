"""The unit explorer's message (issue 15), checked as strictly as :mod:`convscope.server.commands`'.

Page -> server (JSON text)::

    {"type": "units", "channel": N, "layer": L, "order": "mean"|"frame", "featvis": true|false}

``channel`` is required; ``layer`` defaults to the activation grid's layer, ``order`` to ``mean``
(the layer overview sorted by the session mean of each channel's per-frame maximum; ``frame``: by
this frame's maximum), ``featvis`` to true (start, or keep, the feature visualisation of that
unit in the background). The reply, to that viewer only, is a ``units`` message: ``layer``,
``channel``, ``source`` (``session`` or ``dataset`` with ``--units OUTDIR``), ``top`` (best first:
``score``, ``frame``, ``box``, ``image`` as a data URL, and ``source`` for dataset patches),
``histogram`` (``counts``, ``min``, ``max`` of the channel's per-frame maxima), ``overview``
(``frames``, ``mean``, ``last``, ``dead``, ``order``, ``order_by``) and ``featvis`` (``state``:
idle/queued/running/done/cancelled/error, ``step``, ``steps``, ``image`` when done).

A message that does not fit raises :class:`~convscope.errors.RequestError` (one line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convscope.errors import RequestError
from convscope.server.protocol import ModelSpace, _check_keys, _show

KINDS = ("units",)
ORDERS = ("mean", "frame")


@dataclass(frozen=True)
class UnitsMessage:
    layer: str
    channel: int
    order: str
    featvis: bool


def parse(msg: dict, space: ModelSpace, grid_layer: str | None, enabled: bool) -> UnitsMessage:
    """Check a ``units`` message against the model's layers.

    Raises:
        RequestError: one line; nothing has changed.
    """
    _check_keys(msg, ("channel", "layer", "order", "featvis"), "units")
    if not enabled:
        raise RequestError("this dashboard runs without the unit explorer")
    layer = msg.get("layer", grid_layer)
    if not isinstance(layer, str) or layer not in space.conv:
        raise RequestError(f"layer must be a feature-map layer of the model, got {_show(layer)}")
    channel = msg.get("channel")
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise RequestError(f"channel must be an integer, got {_show(channel)}")
    count = space.conv[layer]
    if channel < 0 or (count is not None and channel >= count):
        raise RequestError(f"channel {channel} is out of range for {layer} (0..{(count or 1) - 1})")
    order = msg.get("order", "mean")
    if order not in ORDERS:
        raise RequestError(f"order must be one of {', '.join(ORDERS)}, got {_show(order)}")
    featvis = msg.get("featvis", True)
    if not isinstance(featvis, bool):
        raise RequestError(f"featvis must be true or false, got {_show(featvis)}")
    return UnitsMessage(layer, channel, order, featvis)


def answer(msg: UnitsMessage, session: Any) -> dict:
    """The reply (runs off the event loop: it encodes patches and reads device tensors)."""
    return {"type": "units", **session.query(msg.layer, msg.channel, msg.order, msg.featvis)}
