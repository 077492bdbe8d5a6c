"""A ``Result`` as the messages the browser gets: a JSON header, then one binary message.

Images travel as JPEG (photos, heatmaps, the activation mosaic: small and fast to encode) or PNG
(the FC map, whose one-colour cells JPEG would smear). Each panel becomes a *blob* with a tiny
header, so it can be routed without trusting message order::

    uint32 LE  seq          frame number, matches the JSON header's ``seq``
    uint8      n            length of the panel name
    n bytes    panel name   ascii, e.g. ``input``, ``activations``, ``map:gradcam``
    ...        payload      the encoded image (or raw little-endian float32 for ``ranges``)

On the wire all blobs of a frame travel in one binary message, each preceded by its length
(uint32 LE): one send per frame instead of one per panel, which matters when the event loop
shares the GIL with the engine (every ``await`` can cost a GIL switch interval, 5 ms).

The benchmarks reuse :func:`encode_result` to measure what the server adds per frame.
"""

from __future__ import annotations

import io
import math
import struct
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from convscope.engine.result import Result

JPEG = "image/jpeg"
PNG = "image/png"
FLOAT32 = "application/x-float32"

#: Encoding of each fixed panel; algorithm maps (``map:<name>``) use :data:`MAP_FORMAT`.
PANEL_FORMATS: dict[str, str] = {"input": JPEG, "activations": JPEG, "channel": JPEG, "fc": PNG}
MAP_FORMAT = JPEG

_HEADER = struct.Struct("<IB")
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class EncodedFrame:
    """One frame ready to send.

    Attributes:
        seq: frame number (increasing; the page acknowledges it).
        meta: JSON-serialisable header (``type: "frame"``): geometry, predictions, selections,
            timings, and the list of panels that follow as binary messages. ``activations``,
            ``channel``, ``fc`` and each ``maps`` entry carry ``empty``: null, or why that panel
            is drawn blank (``all zero: ...``, ``constant: ...``, ``non-finite values (inf/nan)``);
            ``maps`` entries also carry ``value_range``, the raw map's ``[min, max]``.
        blobs: one per panel, in the order listed in ``meta["panels"]``.
        seconds: wall time :func:`encode_result` took.
    """

    seq: int
    meta: dict
    blobs: tuple[bytes, ...]
    seconds: float

    @property
    def nbytes(self) -> int:
        """Total size of the panels' blobs."""
        return sum(len(b) for b in self.blobs)

    def packed(self) -> bytes:
        """The one binary message carrying every blob (see :func:`unpack_message`)."""
        return b"".join(_LENGTH.pack(len(b)) + b for b in self.blobs)


def encode_image(image: np.ndarray, mime: str = JPEG, quality: int = 80) -> bytes:
    """An HxWx3 (or HxW) uint8 array as JPEG or PNG bytes."""
    pil = Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    if mime == PNG:
        pil.save(buf, "PNG", compress_level=1)
    else:
        pil.save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def pack_blob(seq: int, name: str, payload: bytes) -> bytes:
    """Prefix ``payload`` with the frame number and panel name (see the module docstring)."""
    raw = name.encode("ascii")
    return _HEADER.pack(seq & 0xFFFFFFFF, len(raw)) + raw + payload


def unpack_blob(blob: bytes) -> tuple[int, str, bytes]:
    """Inverse of :func:`pack_blob`: ``(seq, name, payload)``."""
    seq, n = _HEADER.unpack_from(blob)
    start = _HEADER.size
    return seq, blob[start : start + n].decode("ascii"), blob[start + n :]


def unpack_message(message: bytes) -> list[tuple[int, str, bytes]]:
    """Split a frame's binary message into ``(seq, name, payload)`` per panel."""
    out = []
    offset = 0
    while offset < len(message):
        (n,) = _LENGTH.unpack_from(message, offset)
        offset += _LENGTH.size
        out.append(unpack_blob(message[offset : offset + n]))
        offset += n
    return out


def _round(x: float, digits: int = 5) -> float | None:
    """``x`` to ``digits`` significant digits; None for inf/nan (JSON has no such numbers)."""
    x = float(x)
    return float(f"{x:.{digits}g}") if math.isfinite(x) else None


def encode_result(result: Result, quality: int = 80, seq: int = 0) -> EncodedFrame:
    """Encode every panel of ``result`` and describe them in a JSON-ready header.

    Args:
        result: what ``Engine.run`` returned.
        quality: JPEG quality (1-95).
        seq: the frame number written into the header and every binary message.

    Returns:
        The header and binary messages; ``meta["panels"]`` lists ``{name, mime, width, height}``
        in blob order.
    """
    t0 = time.perf_counter()
    panels: list[dict] = []
    blobs: list[bytes] = []

    def add(name: str, image: np.ndarray, mime: str) -> None:
        payload = encode_image(image, mime, quality)
        panels.append({"name": name, "mime": mime, "width": int(image.shape[1]), "height": int(image.shape[0])})
        blobs.append(pack_blob(seq, name, payload))

    meta: dict = {
        "type": "frame",
        "seq": seq,
        "predictions": [
            {"index": p.index, "label": p.label, "probability": _round(p.probability, 4)}
            for p in result.predictions
        ],
    }
    add("input", result.input, PANEL_FORMATS["input"])
    mosaic = result.activations
    if mosaic is not None:
        add("activations", mosaic.image, PANEL_FORMATS["activations"])
        ranges = np.ascontiguousarray(mosaic.ranges, dtype="<f4")
        panels.append({"name": "ranges", "mime": FLOAT32, "width": 2, "height": int(ranges.shape[0])})
        blobs.append(pack_blob(seq, "ranges", ranges.tobytes()))
        meta["activations"] = {
            "layer": mosaic.layer, "rows": mosaic.rows, "cols": mosaic.cols, "tile_h": mosaic.tile_h,
            "tile_w": mosaic.tile_w, "channels": mosaic.channels,
            "width": int(mosaic.image.shape[1]), "height": int(mosaic.image.shape[0]),
            "empty": getattr(mosaic, "empty", None),
        }
    if result.channel is not None:
        add("channel", result.channel, PANEL_FORMATS["channel"])
        meta["channel"] = {"index": result.channel_index, "empty": getattr(result, "channel_empty", None)}
    fc = result.fc
    if fc is not None:
        add("fc", fc.image, PANEL_FORMATS["fc"])
        meta["fc"] = {
            "layer": fc.layer, "rows": fc.rows, "cols": fc.cols, "cell": fc.cell, "neurons": fc.neurons,
            "selected": fc.selected,
            "selected_value": None if fc.selected_value is None else _round(fc.selected_value),
            "value_range": [_round(v) for v in fc.value_range],
            "width": int(fc.image.shape[1]), "height": int(fc.image.shape[0]),
            "empty": getattr(fc, "empty", None),
        }
    maps = {}
    for name, out in result.maps.items():
        image = out.overlay if out.overlay is not None else out.image
        add(f"map:{name}", image, MAP_FORMAT)
        value_range = getattr(out, "value_range", None)
        maps[name] = {"target": out.target.as_dict(), "layer": out.layer, "rule": out.rule,
                      "overlay": out.overlay is not None, "empty": getattr(out, "empty", None),
                      "value_range": None if value_range is None else [_round(v) for v in value_range]}
    meta["maps"] = maps
    meta["timings"] = {k: _round(v * 1000.0, 4) for k, v in result.timings.items()}  # milliseconds
    meta["panels"] = panels
    return EncodedFrame(seq=seq, meta=meta, blobs=tuple(blobs), seconds=time.perf_counter() - t0)
