"""A hung stream server is "reconnecting" within --read-timeout + 1 s, with no stale frame (item 5)."""

from __future__ import annotations

import io
import os
import signal
import time

import pytest
from helpers.media import clip_frame
from helpers.streams import MjpegServer, RtspServer
from helpers.tools import require_gst_rtsp
from PIL import Image

from convscope.sources import open_source

pytestmark = [pytest.mark.stream, pytest.mark.slow]

READ_TIMEOUT = 2.0


def _hang_and_watch(src, hang) -> tuple[float, list[float]]:
    """Play 1.5 s, call ``hang()``, watch for read timeout + 2 s (past FFmpeg's own timeouts).

    Returns (seconds until ``reconnecting``, times of frames handed out after the hang).
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        src.latest(0.05)
    assert src.state.status == "playing"
    hang()
    hung = time.monotonic()
    late: list[float] = []
    reconnecting = float("inf")
    while time.monotonic() - hung < READ_TIMEOUT + 2:
        frame = src.latest(0.05)
        now = time.monotonic() - hung
        if frame is not None and now > 0.5:  # frames already on the way at the hang are not stale
            late.append(round(now, 2))
        if src.state.status == "reconnecting":
            reconnecting = min(reconnecting, now)
    return reconnecting, late


def test_hung_rtsp_server(rtsp_server):
    with open_source(rtsp_server.url, read_timeout=READ_TIMEOUT, open_timeout=10) as src:
        pid = rtsp_server._proc.pid
        try:
            seconds, late = _hang_and_watch(src, lambda: os.kill(pid, signal.SIGSTOP))
            state = src.state
        finally:
            os.kill(pid, signal.SIGCONT)
    print(f"RTSP server stopped: reconnecting after {seconds:.2f} s (read timeout {READ_TIMEOUT:g} s)")
    assert seconds <= READ_TIMEOUT + 1.0, (seconds, state)
    assert late == [], late
    assert "timed out" in (state.last_error or "")


def test_hung_http_server(mjpeg_server):
    with open_source(mjpeg_server.url, read_timeout=READ_TIMEOUT, open_timeout=10) as src:
        seconds, late = _hang_and_watch(src, mjpeg_server.stalled.set)
        state = src.state
    print(f"HTTP MJPEG server stalled: reconnecting after {seconds:.2f} s (read timeout {READ_TIMEOUT:g} s)")
    assert seconds <= READ_TIMEOUT + 1.0, (seconds, state)
    assert late == [], late


@pytest.fixture
def rtsp_server(video_factory):
    require_gst_rtsp()
    server = RtspServer(video_factory("h264", ".mp4", frames=450, fps=15, gop=15)).start()
    yield server
    server.kill()


@pytest.fixture
def mjpeg_server():
    jpeg = io.BytesIO()
    Image.fromarray(clip_frame(0, 10)).save(jpeg, "JPEG", quality=90)
    server = MjpegServer([jpeg.getvalue()], fps=25).start()
    yield server
    server.stop()
