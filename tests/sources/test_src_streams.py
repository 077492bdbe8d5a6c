"""Network streams against real servers on 127.0.0.1: frames, drops, timeouts, reconnects.

Short timeouts (2 s) keep this file fast; the defaults are 10 s.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import pytest
from helpers.media import clip_frame, mean_abs_diff
from helpers.streams import MjpegServer, RtspServer, SilentServer, free_port

from convscope.cli.main import main
from convscope.errors import SourceError
from convscope.sources import Source, open_source

pytestmark = pytest.mark.stream

T = 2.0  # open and read timeouts used here
WAIT = 20.0  # generous bound for "it happens eventually", never a performance claim


def wait_for(cond: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def read_n(src: Source, n: int, timeout: float = WAIT) -> list:
    frames, deadline = [], time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < deadline:
        f = src.read(timeout=0.5)
        if f is not None:
            frames.append(f)
    return frames


def closest_clip_frame(image, n: int) -> float:
    return min(mean_abs_diff(image, clip_frame(i, n)) for i in range(n))


def test_http_mjpeg_frames_arrive_live(mjpeg_server: MjpegServer) -> None:
    with open_source(mjpeg_server.url, open_timeout=T, read_timeout=T) as src:
        frames = read_n(src, 10)
        info = src.info
        assert src.state.status == "playing"
    assert (info.kind, info.live, info.width, info.height) == ("stream", True, 320, 240)
    assert len(frames) == 10
    assert closest_clip_frame(frames[-1].image, 20) < 6  # a served photo, decoded in RGB
    assert [f.index for f in frames] == sorted(f.index for f in frames)


def test_slow_consumer_gets_the_newest_frame_and_drops_count(mjpeg_server: MjpegServer) -> None:
    with open_source(mjpeg_server.url, open_timeout=T, read_timeout=T) as src:
        got = []
        for _ in range(4):
            time.sleep(0.3)  # several frames arrive meanwhile at 25 fps
            got.append(src.latest(timeout=T))
        dropped = src.dropped
    assert all(f is not None for f in got)
    assert dropped > 0
    assert got[-1].index - got[0].index > 3  # indices count every decoded frame, so gaps show drops


def test_a_stalled_stream_is_lost_within_the_read_timeout_then_recovers(mjpeg_server: MjpegServer) -> None:
    with open_source(mjpeg_server.url, open_timeout=T, read_timeout=T) as src:
        assert read_n(src, 3)
        mjpeg_server.stalled.set()  # connection stays open, no more data
        assert wait_for(lambda: src.state.status == "reconnecting", T + 10)
        assert "timed out" in src.state.last_error
        mjpeg_server.stalled.clear()
        assert wait_for(lambda: src.reconnects == 1 and src.state.status == "playing")
        assert read_n(src, 3)


def test_max_reconnects_gives_up_and_ends_iteration(mjpeg_server: MjpegServer) -> None:
    with open_source(mjpeg_server.url, open_timeout=T, read_timeout=T, max_reconnects=1) as src:
        assert read_n(src, 2)
        mjpeg_server.stop()
        rest = sum(1 for _ in src)  # ends by itself once it gives up
        state = src.state
    assert rest >= 0
    assert state.status == "ended" and "gave up after 1 reconnect" in state.last_error


def test_rtsp_reconnects_after_the_server_is_killed_and_restarted(rtsp_server: RtspServer) -> None:
    with open_source(rtsp_server.url, open_timeout=T, read_timeout=T) as src:
        assert (src.info.kind, src.info.live, src.info.width, src.info.height) == ("stream", True, 320, 240)
        assert src.info.fps == pytest.approx(15.0)
        before = read_n(src, 10)
        assert len(before) == 10 and closest_clip_frame(before[-1].image, 450) < 8
        rtsp_server.kill()
        assert wait_for(lambda: src.state.status == "reconnecting")
        assert src.state.attempt >= 1 and src.state.last_error
        rtsp_server.start()  # same port
        assert wait_for(lambda: src.reconnects == 1 and src.state.status == "playing")
        after = read_n(src, 10)
    assert len(after) == 10 and after[0].index > before[-1].index
    assert after[-1].timestamp > before[-1].timestamp


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_a_port_that_never_answers_fails_within_the_read_timeout(scheme: str) -> None:
    with SilentServer() as silent:
        start = time.monotonic()
        with pytest.raises(SourceError) as err:
            open_source(f"{scheme}://127.0.0.1:{silent.port}/cam", open_timeout=8, read_timeout=T)
        elapsed = time.monotonic() - start
    assert "timed out" in str(err.value) and "\n" not in str(err.value)
    assert elapsed < 7  # the 2 s read timeout applied, not the 8 s open timeout (generous margin)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("rtsp://127.0.0.1:{closed}/cam", "Connection refused"),
        ("http://127.0.0.1:{closed}/video.mjpg", "Connection refused"),
        ("rtsp://camera.invalid/stream", "does not resolve"),
    ],
)
def test_unreachable_servers_fail_quickly_in_one_line(url: str, fragment: str) -> None:
    start = time.monotonic()
    with pytest.raises(SourceError) as err:
        open_source(url.format(closed=free_port()), open_timeout=T, read_timeout=T)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert time.monotonic() - start < 3 * T + 5  # never hangs past the timeouts


def test_passwords_never_appear_in_info_state_errors_or_logs(
    mjpeg_server: MjpegServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2"
    url = mjpeg_server.url.replace("http://", f"http://admin:{secret}@")
    with caplog.at_level(logging.DEBUG, logger="convscope.sources"):
        with open_source(url, open_timeout=T, read_timeout=T) as src:
            assert read_n(src, 2)
            mjpeg_server.stop()
            assert wait_for(lambda: src.state.status == "reconnecting" and src.state.attempt >= 2)
            info, state = src.info, src.state
        with pytest.raises(SourceError) as err:
            open_source(f"rtsp://admin:{secret}@127.0.0.1:{free_port()}/x", open_timeout=T, read_timeout=T)
    assert info.spec == url.replace(secret, "***")
    texts = [info.spec, state.last_error, str(err.value), caplog.text]
    assert all(secret not in t for t in texts)
    assert "admin:***@" in state.last_error and "admin:***@" in caplog.text


def test_probe_counts_a_reconnect_and_exits_zero(mjpeg_server: MjpegServer, capsys: pytest.CaptureFixture[str]) -> None:
    def outage() -> None:
        time.sleep(1.0)
        mjpeg_server.stop()
        time.sleep(1.0)
        mjpeg_server.start()  # same port

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    code = main(["probe", mjpeg_server.url, "--seconds", "5", "--json", "--open-timeout", "2", "--read-timeout", "2"])
    thread.join(10)
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["kind"] == "stream" and report["live"] is True
    assert report["reconnects"] >= 1 and report["frames"] > 10 and report["state"] == "playing"
