"""The engine thread: newest frame, shared selection, pause, status numbers, errors, stopping."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from skimage import data

from convscope.server.encode import unpack_blob
from convscope.server.pipeline import Pipeline, make_net_probe
from convscope.sources import Frame


class Collector:
    """Receives published frames (as the server's hand-off would) for the test to inspect."""

    def __init__(self) -> None:
        self.frames = []
        self.cond = threading.Condition()

    def __call__(self, frame) -> None:
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 60.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.frames) >= n, timeout), f"fewer than {n} frames"
            return self.frames[n - 1]


def _input_of(frame) -> bytes:
    return next(unpack_blob(b)[2] for b in frame.blobs if unpack_blob(b)[1] == "input")


def test_runs_publishes_and_reports(built):
    pipe = built.dashboard.pipeline
    got = Collector()
    pipe.set_publisher(got)
    pipe.start()
    try:
        got.wait(8)
        stats = pipe.stats()
    finally:
        assert pipe.stop(timeout=10)
    assert [f.seq for f in got.frames[:8]] == list(range(8))
    assert stats["source"]["status"] == "playing" and stats["source"]["kind"] == "demo"
    assert stats["fps"] > 0 and stats["net_fps"] > 0
    assert stats["ratio"] == round(stats["fps"] / stats["net_fps"], 3)
    assert 0 < stats["encode_share"] < 1 and stats["engine_ms"] > 0 and stats["encode_ms"] > 0
    assert stats["net_fps_method"].startswith("bare forward")
    assert stats["error"] is None and stats["frames"] >= 8
    assert stats["dropped"] >= 0 and stats["frame_bytes"] > 0


def _wait_channel(got: Collector, channel: int, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    k = 1
    while time.monotonic() < deadline:
        frame = got.wait(k, timeout)
        if frame.meta["channel"]["index"] == channel:
            return k, frame
        k += 1
    raise AssertionError(f"no frame with channel {channel}")


def test_pause_recomputes_the_frozen_frame_only_on_changes(built):
    pipe = built.dashboard.pipeline
    got = Collector()
    pipe.set_publisher(got)
    pipe.start()
    try:
        got.wait(2)
        pipe.set_paused(True)
        pipe.update(replace(pipe.state, channel=3))
        _, frozen = _wait_channel(got, 3)  # computed after the pause: on the frozen frame
        pipe.update(replace(pipe.state, channel=4))
        k, again = _wait_channel(got, 4)
        assert _input_of(again) == _input_of(frozen)  # same frame, new selection
        time.sleep(0.5)
        assert len(got.frames) == k  # nothing runs while paused and unchanged
        pipe.set_paused(False)
        for n in range(k + 1, k + 40):
            if _input_of(got.wait(n)) != _input_of(frozen):
                break
        assert _input_of(got.frames[-1]) != _input_of(frozen)
    finally:
        assert pipe.stop(timeout=10)


class OneFrameSource:
    """A source that hands out one given frame, then nothing (like an ended file)."""

    def __init__(self, image: np.ndarray) -> None:
        self.frame = Frame(image, 0, 0.0)
        self.info = type("Info", (), {"kind": "image", "spec": "x", "width": 1, "height": 1})()
        self.state = type("State", (), {"status": "ended", "attempt": 0, "last_error": None})()
        self.dropped = 0

    def latest(self, timeout: float = 0.0):
        frame, self.frame = self.frame, None
        if frame is None:
            time.sleep(timeout)
        return frame


def test_an_engine_error_shows_in_the_status_and_the_thread_lives_on(built):
    pipe = Pipeline(built.engine, OneFrameSource(np.zeros((8, 8), np.uint8)), built.dashboard.pipeline.state)
    got = Collector()
    pipe.set_publisher(got)
    pipe.start()
    try:
        deadline = time.monotonic() + 30
        while pipe.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pipe.error and "\n" not in pipe.error and "RGB" in pipe.error
        assert pipe.stats()["error"] == pipe.error and not got.frames
        assert pipe.alive
    finally:
        assert pipe.stop(timeout=10)


def test_ended_source_keeps_the_last_frame_for_new_selections(built):
    pipe = Pipeline(built.engine, OneFrameSource(data.coffee()), built.dashboard.pipeline.state)
    got = Collector()
    pipe.set_publisher(got)
    pipe.start()
    try:
        first = got.wait(1)
        pipe.update(replace(pipe.state, channel=2))
        second = got.wait(2)
        assert second.meta["channel"]["index"] == 2 and _input_of(second) == _input_of(first)
        assert pipe.stats()["source"]["status"] == "ended"
    finally:
        assert pipe.stop(timeout=10)


def test_net_probe_times_a_bare_forward(built):
    probe = make_net_probe(built.bundle)
    seconds = [probe(data.astronaut()) for _ in range(3)]
    assert all(0 < s < 10 for s in seconds)
