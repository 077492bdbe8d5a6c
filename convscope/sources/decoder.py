"""What every reader (PyAV, webcam, images, demo) gives the source loop: pictures, one by one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class RawFrame:
    """A decoded picture before the source numbers it.

    Attributes:
        image: HxWx3 RGB uint8, C-contiguous.
        timestamp: media time in seconds, or ``None`` when the input has none.
        path: the file a still image came from.
    """

    image: np.ndarray
    timestamp: float | None = None
    path: str | None = None


class Decoder(Protocol):
    """One opened input. Opening happens in the constructor, which raises ``SourceError``.

    Attributes:
        fps: nominal rate (0.0 if unknown).
        live: the input runs in real time and does not end by itself.
    """

    fps: float
    live: bool

    def frames(self) -> Iterator[RawFrame]:
        """Decoded pictures until the input ends; raises ``SourceError`` when reading fails."""
        ...

    def close(self) -> None:
        """Release the input; safe to call twice."""
        ...


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A C-contiguous HxWx3 uint8 view or copy of ``image`` (what :class:`Frame` promises)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image)
