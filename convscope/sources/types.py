"""The values a frame source hands out: frames, what the source is, and how it is doing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

SourceKind = Literal["webcam", "file", "stream", "image", "folder", "demo"]
SourceStatus = Literal["playing", "reconnecting", "ended"]


@dataclass(frozen=True)
class Frame:
    """One decoded picture.

    Attributes:
        image: HxWx3 RGB uint8, C-contiguous (ready for ``torch.from_numpy``).
        index: position in the source, counting frames that were dropped, so gaps show drops.
        timestamp: seconds; media time for files, images and the demo, time since opening for
            live sources.
        path: the file a still image came from, else ``None``.
    """

    image: np.ndarray
    index: int
    timestamp: float
    path: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    """What a source is, known once it has opened.

    Attributes:
        kind: webcam, file, stream, image, folder or demo.
        width: frame width of the first frame (images in a folder may differ).
        height: frame height of the first frame.
        fps: nominal frames per second (0.0 when the source does not say).
        live: frames arrive in real time and old ones are dropped (webcams, live streams).
        spec: the spec the source was opened with, passwords masked: safe to show or log.
    """

    kind: SourceKind
    width: int
    height: int
    fps: float
    live: bool
    spec: str


@dataclass(frozen=True)
class SourceState:
    """How a source is doing right now, for the UI and ``convscope probe``.

    Attributes:
        status: ``playing``, ``reconnecting`` (a live source lost its input and retries) or
            ``ended`` (no more frames will come).
        attempt: the current reconnect attempt (0 while playing).
        last_error: the latest error, one line, passwords masked; ``None`` if none.
    """

    status: SourceStatus = "playing"
    attempt: int = 0
    last_error: str | None = None


class FrameSource(Protocol):
    """A source as the live server sees it (:class:`convscope.sources.source.Source` is one)."""

    @property
    def info(self) -> SourceInfo: ...

    @property
    def state(self) -> SourceState: ...

    def latest(self, timeout: float = 0.0) -> Frame | None:
        """The newest frame not yet returned, waiting up to ``timeout`` seconds; None if none came."""
        ...
