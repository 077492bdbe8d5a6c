"""Webcams through OpenCV (V4L2 on Linux). Kept thin: the source loop does the rest."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator

from convscope.errors import SourceError
from convscope.pixels import too_large
from convscope.sources.decoder import RawFrame, as_rgb


def available_webcams() -> list[int]:
    """Numbers N of the ``/dev/videoN`` devices present (Linux only; empty elsewhere)."""
    found = []
    for dev in glob.glob("/dev/video*"):
        suffix = dev.removeprefix("/dev/video")
        if suffix.isdigit():
            found.append(int(suffix))
    return sorted(found)


class WebcamDecoder:
    """An opened webcam.

    Args:
        index: the webcam number (``/dev/video{index}`` on Linux).
        open_timeout: seconds OpenCV may take to open it.
        read_timeout: seconds OpenCV may wait for a frame.

    Raises:
        SourceError: no such device, OpenCV missing, or the device does not open.
    """

    live = True

    def __init__(self, index: int, *, open_timeout: float = 10.0, read_timeout: float = 10.0) -> None:
        self._index = index
        self._cap = None
        linux = sys.platform.startswith("linux")
        device = f"/dev/video{index}"
        if linux and not os.path.exists(device):
            have = available_webcams()
            listed = f"available: {', '.join(map(str, have))}" if have else "no /dev/video* devices found"
            raise SourceError(f"no webcam {index}: {device} does not exist ({listed})")
        try:
            import cv2
        except ImportError:
            raise SourceError("reading a webcam needs OpenCV: pip install opencv-python-headless") from None
        self._cv2 = cv2
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000),
        ]
        cap = cv2.VideoCapture(index, cv2.CAP_V4L2 if linux else cv2.CAP_ANY, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open webcam {index}: busy, no permission, or not a camera")
        self._cap = cap
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        reason = too_large(width, height) if width and height else None
        if reason is not None:
            self.close()
            raise SourceError(f"webcam {index}: {reason}")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else 0.0

    def frames(self) -> Iterator[RawFrame]:
        cv2 = self._cv2
        while self._cap is not None:
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                raise SourceError(f"webcam {self._index} stopped delivering frames")
            yield RawFrame(as_rgb(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
