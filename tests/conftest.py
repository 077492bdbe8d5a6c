"""Shared fixtures for the whole suite.

Videos are encoded once per session by ffmpeg from real photos (see ``helpers/media.py``:
frame i of an n-frame clip is ``clip_frame(i, n)``), so tests can check decoded pixels.
Without ffmpeg they skip with the reason (and fail when ``CI=true``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.media import encode_video
from helpers.tools import require_ffmpeg

VideoFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def video_factory(tmp_path_factory: pytest.TempPathFactory) -> VideoFactory:
    """``make(codec, suffix, frames=50, fps=25, size=(320, 240), gop=25) -> Path``, cached per session.

    ``codec`` is ``h264``, ``mjpeg`` or ``vp9``; ``suffix`` picks the container (``.mp4`` ...).
    """
    folder = tmp_path_factory.mktemp("videos")
    made: dict[tuple, Path] = {}

    def make(codec: str, suffix: str, frames: int = 50, fps: int = 25,
             size: tuple[int, int] = (320, 240), gop: int = 25) -> Path:
        key = (codec, suffix, frames, fps, size, gop)
        if key not in made:
            require_ffmpeg()
            name = f"{codec}_{frames}f_{fps}fps_{size[0]}x{size[1]}_g{gop}{suffix}"
            made[key] = encode_video(folder / name, codec, frames=frames, fps=fps, size=size, gop=gop)
        return made[key]

    return make


@pytest.fixture(scope="session")
def h264_mp4(video_factory: VideoFactory) -> Path:
    """H.264 in MP4, 50 frames of 320x240 at 25 fps, a keyframe every 25 frames."""
    return video_factory("h264", ".mp4")


@pytest.fixture(scope="session")
def mjpeg_avi(video_factory: VideoFactory) -> Path:
    """Motion JPEG in AVI, 50 frames of 320x240 at 25 fps."""
    return video_factory("mjpeg", ".avi")


@pytest.fixture(scope="session")
def vp9_webm(video_factory: VideoFactory) -> Path:
    """VP9 in WebM, 50 frames of 320x240 at 25 fps, a keyframe every 25 frames."""
    return video_factory("vp9", ".webm")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that assert wall-clock bounds ``timing``: ``make test`` runs them alone."""
    for item in items:
        path = item.path
        if "reliability" in path.parts or path.name == "test_src_streams.py":
            item.add_marker(pytest.mark.timing)
