"""Test media made from real photos: deterministic frames, and videos encoded by ffmpeg.

Frame ``i`` of an ``n``-frame clip is a crop panning across chelsea (first half) then coffee
(second half), so a test can compare a decoded frame with what was encoded.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import skimage.data

CODECS: dict[str, list[str]] = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"],
    "mjpeg": ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-crf", "20", "-b:v", "0",
            "-pix_fmt", "yuv420p"],
}


@functools.cache
def _photo(name: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])


def clip_frame(i: int, n: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """Frame ``i`` of an ``n``-frame test clip: an RGB uint8 crop of a real photo, ``size`` = (w, h).

    ``size`` must fit inside chelsea (451x300), the smaller photo.
    """
    w, h = size
    if w > 451 or h > 300:
        raise ValueError(f"clip frames are crops of real photos: at most 451x300, not {w}x{h}")
    half = max(1, n // 2)
    photo = _photo("chelsea" if i < half else "coffee")
    ph, pw = photo.shape[:2]
    j, span = (i, half) if i < half else (i - half, n - half)
    x = round((pw - w) * j / max(1, span - 1))
    y = (ph - h) // 2
    return np.ascontiguousarray(photo[y : y + h, x : x + w])


def encode_video(
    path: Path, codec: str, *, frames: int = 50, fps: int = 25, size: tuple[int, int] = (320, 240), gop: int = 25
) -> Path:
    """Encode :func:`clip_frame` 0..frames-1 with ffmpeg into ``path`` (format from its suffix)."""
    w, h = size
    cmd = [
        shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
        *CODECS[codec], "-g", str(gop), "-an", str(path),
    ]
    data = b"".join(clip_frame(i, frames, size).tobytes() for i in range(frames))
    subprocess.run(cmd, input=data, check=True, capture_output=True, timeout=120)
    return path


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in grey levels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
