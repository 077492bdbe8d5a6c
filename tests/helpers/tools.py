"""External tools tests need: skip with a clear reason when missing, fail instead on CI.

On a developer machine a missing ffmpeg or GStreamer should not turn the suite red; on CI
(``CI=true``) the same absence would silently hide whole test groups, so it fails.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"

_GST_CHECK = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("filesrc", "qtdemux", "h264parse", "rtph264pay") if Gst.ElementFactory.find(e) is None]
if missing:
    raise SystemExit("missing GStreamer elements: " + ", ".join(missing))
"""


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require(ok: bool, reason: str) -> None:
    """Skip the test with ``reason`` unless ``ok``; on CI fail it instead."""
    if ok:
        return
    if on_ci():
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


@functools.cache
def ffmpeg_missing() -> str | None:
    """Why ffmpeg cannot make test videos, or ``None`` when it can."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return "ffmpeg is not installed (apt-get install ffmpeg)"
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    lacking = [enc for enc in ("libx264", "mjpeg", "libvpx-vp9") if f" {enc} " not in out]
    return f"ffmpeg lacks encoders: {', '.join(lacking)}" if lacking else None


@functools.cache
def gst_rtsp_missing() -> str | None:
    """Why the GStreamer RTSP test server cannot run, or ``None`` when it can."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found (the GStreamer RTSP server runs under the system Python)"
    try:
        proc = subprocess.run([SYSTEM_PYTHON, "-c", _GST_CHECK], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "checking GStreamer timed out"
    if proc.returncode == 0:
        return None
    detail = (proc.stderr.strip().splitlines() or [""])[-1] or proc.stdout.strip()
    return (
        "GStreamer RTSP server unavailable "
        f"({detail or 'missing elements'}; apt-get install --no-install-recommends gir1.2-gst-rtsp-server-1.0 "
        "gstreamer1.0-rtsp python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)"
    )


def require_ffmpeg() -> None:
    reason = ffmpeg_missing()
    require(reason is None, reason or "")


def require_gst_rtsp() -> None:
    reason = gst_rtsp_missing()
    require(reason is None, reason or "")
