"""Decode a source's first frames once, so that decoding is measured by neither loop."""

from __future__ import annotations

import numpy as np

from convscope.errors import SourceError

DEFAULT_SOURCE = "demo"
DEFAULT_COUNT = 32


def decode_frames(spec: str = DEFAULT_SOURCE, count: int = DEFAULT_COUNT) -> list[np.ndarray]:
    """Up to ``count`` RGB uint8 frames from ``spec`` (any source spec), in source order.

    Raises:
        SourceError: the source cannot be opened or yields no frame.
    """
    from convscope.sources import open_source

    frames: list[np.ndarray] = []
    source = open_source(spec, realtime=False)
    try:
        for frame in source:
            frames.append(np.ascontiguousarray(frame.image))
            if len(frames) >= count:
                break
    finally:
        source.close()
    if not frames:
        raise SourceError(f"source {spec!r} gave no frame to benchmark with")
    return frames
