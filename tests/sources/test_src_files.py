"""Video files decoded through PyAV: every frame, right pixels, pacing, looping, bad files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from helpers.media import clip_frame, mean_abs_diff

from convscope.errors import SourceError
from convscope.sources import open_source

N = 50  # frames in the session videos (see tests/conftest.py)


@pytest.fixture(params=["h264_mp4", "mjpeg_avi", "vp9_webm"])
def video(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)


def test_every_frame_decodes_to_the_encoded_rgb(video: Path) -> None:
    with open_source(str(video), realtime=False) as src:
        frames = list(src)
        info, state = src.info, src.state
    assert (info.kind, info.width, info.height, info.live) == ("file", 320, 240, False)
    assert info.fps == pytest.approx(25.0)
    assert [f.index for f in frames] == list(range(N))
    assert state.status == "ended" and state.last_error is None
    for f in frames:
        assert f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8
        assert f.image.flags["C_CONTIGUOUS"] and f.path is None
    assert np.diff([f.timestamp for f in frames]) == pytest.approx(np.full(N - 1, 1 / 25), abs=1e-3)
    # The right picture, in RGB order: close to what was encoded, far from other frames of it
    # and from the same frame with red and blue swapped.
    for i in (0, 12, 37, N - 1):
        expected = clip_frame(i, N)
        assert mean_abs_diff(frames[i].image, expected) < 6
        assert mean_abs_diff(frames[i].image, expected[..., ::-1]) > 10
        assert mean_abs_diff(frames[i].image, clip_frame((i + N // 2) % N, N)) > 20


def test_realtime_paces_at_the_file_rate(h264_mp4: Path) -> None:
    start = time.monotonic()
    with open_source(str(h264_mp4), realtime=True) as src:
        indices = [f.index for f in src]
    # 50 frames at 25 fps cannot arrive faster than 49/25 s; a lower bound, safe on busy machines.
    assert time.monotonic() - start >= 1.8
    assert indices == sorted(indices) and indices[-1] == N - 1
    assert len(indices) + src.dropped == N


def test_latest_hands_out_only_newer_frames_and_skips_stale_ones(h264_mp4: Path) -> None:
    with open_source(str(h264_mp4), realtime=True) as src:
        seen = []
        while src.state.status != "ended" or seen[-1:] != [N - 1]:
            f = src.latest(timeout=0.5)
            if f is None:
                if src.state.status == "ended":
                    break
                continue
            seen.append(f.index)
            time.sleep(0.12)  # a consumer slower than 25 fps
        dropped = src.dropped
    assert seen == sorted(set(seen)) and seen[-1] == N - 1
    assert dropped > 0 and len(seen) + dropped == N


def test_loop_restarts_with_increasing_timestamps(mjpeg_avi: Path) -> None:
    with open_source(str(mjpeg_avi), realtime=False, loop=True) as src:
        frames = [f for _, f in zip(range(N * 2 + 10), src, strict=False)]
        assert src.state.status == "playing"
    assert [f.index for f in frames] == list(range(N * 2 + 10))
    assert np.all(np.diff([f.timestamp for f in frames]) > 0)
    assert mean_abs_diff(frames[N].image, frames[0].image) < 1  # the same decoder, the same frame


def test_default_is_no_loop_for_files(vp9_webm: Path) -> None:
    with open_source(str(vp9_webm), realtime=False) as src:
        assert sum(1 for _ in src) == N


@pytest.mark.parametrize(
    ("content", "name", "fragment"),
    [(b"this is not a video\n" * 10, "notes.mp4", "not a video FFmpeg can read"),
     (b"", "empty.mkv", "empty.mkv")],
)
def test_files_that_are_not_video_fail_in_one_line(tmp_path: Path, content: bytes, name: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as err:
        open_source(str(path))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_truncated_video_still_yields_its_first_frames(h264_mp4: Path, tmp_path: Path) -> None:
    # An MKV written by ffmpeg streams its header first, so a cut file still plays up to the cut.
    import av

    cut = tmp_path / "cut.mkv"
    with av.open(str(h264_mp4)) as inp, av.open(str(cut), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with open_source(str(cut), realtime=False) as src:
        n = sum(1 for _ in src)
    assert 5 < n < N


def test_missing_file_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(str(tmp_path / "gone.mp4"))
    assert time.monotonic() - start < 5
