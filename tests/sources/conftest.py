"""Fixtures for source tests: served JPEG frames, a long H.264 clip, and running stream servers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.media import clip_frame
from helpers.streams import MjpegServer, RtspServer
from helpers.tools import require_gst_rtsp
from PIL import Image

MJPEG_FRAMES = 20


@pytest.fixture(scope="session")
def mjpeg_jpegs() -> list[bytes]:
    """JPEG encodings of ``clip_frame(i, MJPEG_FRAMES)``: what the MJPEG server sends, in a loop."""
    out = []
    for i in range(MJPEG_FRAMES):
        buf = io.BytesIO()
        Image.fromarray(clip_frame(i, MJPEG_FRAMES)).save(buf, "JPEG", quality=92)
        out.append(buf.getvalue())
    return out


@pytest.fixture
def mjpeg_server(mjpeg_jpegs: list[bytes]) -> Iterator[MjpegServer]:
    """An HTTP multipart MJPEG server on 127.0.0.1 at 25 fps (pure Python: always available)."""
    server = MjpegServer(mjpeg_jpegs, fps=25).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rtsp_video(video_factory) -> Path:
    """30 s of H.264 at 15 fps (GOP 15) for the RTSP server: outlasts any single test."""
    return video_factory("h264", ".mp4", frames=450, fps=15, gop=15)


@pytest.fixture
def rtsp_server(rtsp_video: Path) -> Iterator[RtspServer]:
    """GStreamer's RTSP server (system Python) streaming :func:`rtsp_video`."""
    require_gst_rtsp()
    server = RtspServer(rtsp_video).start()
    yield server
    server.kill()
