"""A truncated or corrupt video says so (item 5), and Ctrl-C stops a server with stalled viewers
within a second (item 4).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from rel_helpers import BlindAcker, LiveRun, RawWebSocket, next_frame, next_json, viewer
from websockets.exceptions import ConnectionClosed

from convscope.sources import open_source


def _truncated(src: Path, folder: Path, faststart: bool) -> Path:
    """``src`` (index up front for MP4) cut in half, as an interrupted download leaves it."""
    whole = folder / f"whole{src.suffix}"
    if faststart:
        subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-loglevel", "error", "-y", "-i", str(src),
                        "-c", "copy", "-movflags", "+faststart", str(whole)], check=True, timeout=60)
    else:
        shutil.copy(src, whole)
    data = whole.read_bytes()
    cut = folder / f"cut{src.suffix}"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _corrupt(src: Path, folder: Path) -> Path:
    data = bytearray(src.read_bytes())
    start = len(data) // 3
    data[start:start + len(data) // 3] = bytes(range(256)) * (len(data) // 3 // 256) + bytes(len(data) // 3 % 256)
    out = folder / f"corrupt{src.suffix}"
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def cut_mp4(video_factory, tmp_path_factory) -> Path:
    return _truncated(video_factory("h264", ".mp4", frames=100), tmp_path_factory.mktemp("cut"), faststart=True)


@pytest.mark.parametrize("kind", ["truncated mp4", "truncated webm", "corrupt mp4"])
def test_damaged_video_ends_with_its_error(kind, cut_mp4, video_factory, tmp_path):
    if kind == "truncated mp4":
        path = cut_mp4
    elif kind == "truncated webm":
        path = _truncated(video_factory("vp9", ".webm", frames=100), tmp_path, faststart=False)
    else:
        path = _corrupt(video_factory("h264", ".mp4", frames=100), tmp_path)
    with open_source(str(path), realtime=False) as src:
        frames = sum(1 for _ in src)
        state = src.state
    assert 0 < frames <= 100
    assert state.status == "ended"
    assert state.last_error and ("ended early" in state.last_error or "broken packet" in state.last_error)
    assert "corrupt" in state.last_error


def test_a_whole_video_ends_without_error(video_factory):
    with open_source(str(video_factory("h264", ".mp4", frames=100)), realtime=False) as src:
        assert sum(1 for _ in src) == 100
        assert src.state.last_error is None


@pytest.fixture(scope="module")
def live_cut(cut_mp4, tmp_path_factory):
    run = LiveRun("--source", str(cut_mp4), folder=tmp_path_factory.mktemp("livecut"))
    yield run
    run.stop()


@pytest.mark.slow
def test_truncated_file_error_in_the_status_and_the_cli(live_cut):
    with viewer(live_cut.ws_url) as ws:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            source = next_json(ws, "status")["source"]
            if source["status"] == "ended":
                break
        assert source["status"] == "ended"
        assert "truncated or corrupt" in (source["last_error"] or ""), source
    assert "truncated or corrupt" in live_cut.stderr()


@pytest.mark.slow
def test_sigint_stops_cleanly_within_a_second_with_stalled_viewers(live_cut):
    """Last: it ends the module's server. The last frame stays on screen after the file ended."""
    stalled = [RawWebSocket(live_cut.port, live_cut.ws_path, rcvbuf=4096) for _ in range(10)]
    ackers = [BlindAcker(raw) for raw in stalled]
    for a in ackers:
        a.start()
    closed: dict = {}
    try:
        with viewer(live_cut.ws_url) as ws:
            ws.send('{"type": "view", "channel": 1}')  # the paused last frame is recomputed
            next_frame(ws, timeout=20)
            time.sleep(1.0)

            def read_until_closed() -> None:
                try:
                    while True:
                        ws.recv(timeout=10)
                except ConnectionClosed as exc:
                    closed["code"] = exc.rcvd.code if exc.rcvd else None
                except Exception as exc:  # noqa: BLE001 - reported by the assert
                    closed["other"] = repr(exc)

            reader = threading.Thread(target=read_until_closed, daemon=True)
            reader.start()
            seconds = live_cut.signal(signal.SIGINT, timeout=30)
            reader.join(10)
    finally:
        for a in ackers:
            a.stop.set()
        for raw in stalled:
            raw.close()
    from test_rel_live import _check_clean_stop

    _check_clean_stop(live_cut, seconds, closed, "SIGINT")
