"""Decode a source's first frames once, so that decoding is measured by neither loop."""

from __future__ import annotations

import itertools

import numpy as np

from convscope.errors import SourceError

DEFAULT_SOURCE = "demo"
DEFAULT_COUNT = 32


def decode_frames(spec: str = DEFAULT_SOURCE, count: int = DEFAULT_COUNT) -> list[np.ndarray]:
    """Up to ``count`` RGB uint8 frames from ``spec`` (any source spec), in source order.

    Where the video stack (PyAV) is missing, as on a bare GPU box, the ``demo`` spec still works:
    its frames are drawn from the bundled photos without it.

    Raises:
        SourceError: the source cannot be opened or yields no frame.
    """
    try:
        from convscope.sources import open_source
    except ImportError as exc:
        if spec != DEFAULT_SOURCE:
            raise SourceError(f"source {spec!r} needs {exc.name or 'a missing package'}: "
                              f"install it or use --source {DEFAULT_SOURCE}") from None
        return _demo_frames(count)
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


def _demo_frames(count: int) -> list[np.ndarray]:
    from convscope.sources.demo import DemoDecoder

    decoder = DemoDecoder()
    try:
        return [np.ascontiguousarray(f.image) for f in itertools.islice(decoder.frames(), count)]
    finally:
        decoder.close()
