"""Playback of files and folders (issue 14, item 1): frame-accurate seek, step, speed, every frame,
replay, and a clip that waits paused on its first frame until someone watches.

References: the frames the clip was encoded from (``clip_frame``), and the plain source's in-order
decode of the same file. The media clock is driven by a fake ``time.monotonic``, so speed is
checked without timing the machine.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.media import clip_frame, mean_abs_diff
from PIL import Image

from convscope.errors import SourceError
from convscope.sources import open_source
from convscope.sources import playback as pb

N = 50  # frames of the session's h264_mp4 (25 fps, a keyframe every 25)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(pb.time, "monotonic", c)
    return c


@pytest.fixture(scope="module")
def in_order(h264_mp4) -> list[np.ndarray]:
    with open_source(str(h264_mp4), realtime=False) as src:
        return [f.image for f in src]


def test_seek_anywhere_gives_the_frame_decoded_in_order(h264_mp4, in_order):
    frames = pb.VideoFrames(str(h264_mp4), h264_mp4.name)
    try:
        assert len(frames) == N and frames.fps == pytest.approx(25.0) and frames.error is None
        assert frames.times[1] == pytest.approx(0.04)
        for i in (37, 3, 24, 25, 26, 49, 0, 12, 13, 14, 40):  # backwards, across keyframes, forwards
            image = frames.get(i)
            assert np.array_equal(image, in_order[i]), i  # the same decoder output, bit for bit
            assert mean_abs_diff(image, clip_frame(i, N)) < 4, i  # and it is the frame that was encoded
    finally:
        frames.close()


def test_starts_paused_on_the_first_frame_until_a_viewer_arrives(h264_mp4, clock):
    player = pb.open_playback(str(h264_mp4))
    try:
        assert player.info.kind == "file" and (player.info.width, player.info.height) == (320, 240)
        first = player.latest(0)
        assert first.index == 0 and player.paused
        clock.t += 5.0
        assert player.latest(0) is None and player.describe()["position"] == 0  # no one watches: no play
        player.viewer_arrived()
        assert not player.paused
        clock.t += 0.5
        assert player.latest(0).index == 12  # 0.5 s at 25 fps
        player.viewer_arrived()  # only the first viewer starts it
        player.set_playing(False)
        player.viewer_arrived()
        assert player.paused
    finally:
        player.close()


def test_speed_steps_seek_and_replay(h264_mp4, clock, in_order):
    player = pb.open_playback(str(h264_mp4), autoplay=True)
    try:
        player.latest(0)
        player.set_speed(2.0)
        clock.t += 0.4  # 0.8 s of media at 2x
        assert player.latest(0).index == 20
        player.set_speed(0.25)
        clock.t += 0.4  # 0.1 s more
        assert player.latest(0).index == 22
        with pytest.raises(SourceError, match="speed"):
            player.set_speed(8.0)
        player.step(1)
        assert player.paused
        f = player.latest(0)
        assert f.index == 23 and np.array_equal(f.image, in_order[23])
        player.step(-5)
        assert player.latest(0).index == 18
        player.step(-100)
        assert player.latest(0).index == 0
        player.seek(47)
        assert np.array_equal(player.latest(0).image, in_order[47])
        with pytest.raises(SourceError, match="out of range"):
            player.seek(N)
        player.set_speed(1.0)
        player.set_playing(True)
        clock.t += 1.0
        assert player.latest(0).index == N - 1  # the last frame is shown before the end
        assert player.latest(0) is None
        d = player.describe()
        assert d["ended"] and not d["playing"] and player.state.status == "ended"
        player.set_playing(True)  # play at the end = replay from the start
        assert player.latest(0).index == 0 and not player.describe()["ended"]
    finally:
        player.close()


def test_every_frame_hands_out_each_frame_once_in_order(h264_mp4, in_order):
    player = pb.open_playback(str(h264_mp4), autoplay=True)
    try:
        player.set_speed(every_frame=True)
        got = []
        while (f := player.latest(1.0)) is not None:
            got.append(f.index)
            assert np.array_equal(f.image, in_order[f.index])
        assert got == list(range(N)) and player.passed == 0
        assert player.describe()["ended"]
    finally:
        player.close()


def test_loop_starts_again(h264_mp4, clock):
    player = pb.open_playback(str(h264_mp4), loop=True, autoplay=True)
    try:
        player.latest(0)
        clock.t += 2.5
        assert player.latest(0).index == N - 1
        assert player.latest(0).index == 0 and not player.describe()["ended"]
    finally:
        player.close()


def test_folder_plays_images_in_natural_order_and_reports_unreadable_ones(tmp_path):
    for i in (10, 2, 1):
        Image.fromarray(clip_frame(i, 12, (64, 48))).save(tmp_path / f"img{i}.png")
    (tmp_path / "img3.png").write_bytes(b"not a png")
    player = pb.open_playback(str(tmp_path))
    try:
        assert player.info.kind == "folder" and len(player._frames) == 4
        assert np.array_equal(player.latest(0).image, clip_frame(1, 12, (64, 48)))
        player.seek(3)
        f = player.latest(0)
        assert f.path.endswith("img10.png") and np.array_equal(f.image, clip_frame(10, 12, (64, 48)))
        player.seek(2)  # img3.png: unreadable, the next readable one shows and the error is reported
        assert player.latest(0).path.endswith("img3.png")
        assert "img3.png" in player.state.last_error and player.skipped[0][0].endswith("img3.png")
    finally:
        player.close()


def test_other_sources_are_not_players(tmp_path):
    assert pb.open_playback("demo") is None
    with pytest.raises(SourceError, match="nope.mp4"):
        pb.open_playback(str(tmp_path / "nope.mp4"))
