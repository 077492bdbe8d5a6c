"""A ``Result`` as the messages the browser gets: a JSON header, then one binary message.

Images travel as JPEG (photos, heatmaps, the activation mosaic: small and fast to encode) or PNG
(the FC map, whose one-colour cells JPEG would smear): each view's panel says which
(:meth:`convscope.views.Panel.blobs`). Each panel becomes a *blob* with a tiny
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
import struct
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from convscope.views import Result
from convscope.views.base import FLOAT32, JPEG, PNG, round_sig

__all__ = ["FLOAT32", "JPEG", "PNG", "EncodedFrame", "encode_image", "encode_result", "pack_blob", "unpack_blob",
           "unpack_message"]

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
            ``maps`` entries also carry ``value_range``, the raw map's ``[min, max]``. ``costs``:
            milliseconds each view cost on its own (:attr:`Result.costs`); the pipeline adds
            ``background`` (maps computed off the frame loop, see :mod:`convscope.server.lanes`).
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


def encode_result(result: Result, quality: int = 80, seq: int = 0) -> EncodedFrame:
    """Encode every panel of ``result`` and describe them in a JSON-ready header.

    Knows no view by name: each panel says what its blobs are and where its header entry goes
    (:class:`convscope.views.Panel`).

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
    meta: dict = {"type": "frame", "seq": seq, "predictions": [], "maps": {}}
    for panel in result.panels.values():
        for blob in panel.blobs():
            if blob.mime == FLOAT32:
                data = np.ascontiguousarray(blob.data, dtype="<f4")
                payload, width, height = data.tobytes(), int(data.shape[-1]) if data.ndim > 1 else 1, int(data.shape[0])
            else:
                payload = encode_image(blob.data, blob.mime, quality)
                width, height = int(blob.data.shape[1]), int(blob.data.shape[0])
            panels.append({"name": blob.name, "mime": blob.mime, "width": width, "height": height})
            blobs.append(pack_blob(seq, blob.name, payload))
        value = panel.meta()
        if value is not None:
            *parents, key = panel.meta_key()
            place = meta
            for parent in parents:
                place = place.setdefault(parent, {})
            place[key] = value
    meta["timings"] = {k: round_sig(v * 1000.0, 4) for k, v in result.timings.items()}  # milliseconds
    meta["costs"] = {k: round_sig(v * 1000.0, 3) for k, v in result.costs.items()}  # per view, milliseconds
    meta["panels"] = panels
    return EncodedFrame(seq=seq, meta=meta, blobs=tuple(blobs), seconds=time.perf_counter() - t0)
