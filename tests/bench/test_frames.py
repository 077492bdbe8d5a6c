"""Frames decoded once up front, from any source, and from the demo even without the video stack."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from convscope.bench.frames import decode_frames
from convscope.errors import SourceError


def test_video_frames_in_order(h264_mp4):
    frames = decode_frames(str(h264_mp4), 5)
    assert len(frames) == 5
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 and f.flags.c_contiguous for f in frames)
    assert not np.array_equal(frames[0], frames[4])  # the clip moves


def test_short_source_gives_what_it_has(tmp_path):
    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.coffee()).save(tmp_path / "coffee.png")
    frames = decode_frames(str(tmp_path / "coffee.png"), 8)
    assert 1 <= len(frames) <= 8 and np.array_equal(frames[0], skimage.data.coffee())


def test_demo_without_the_video_stack(monkeypatch):
    expected = decode_frames("demo", 3)
    monkeypatch.setitem(sys.modules, "convscope.sources", None)  # importing it now fails
    frames = decode_frames("demo", 3)
    assert len(frames) == 3 and all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    with pytest.raises(SourceError, match="install it or use --source demo"):
        decode_frames("clip.mp4", 3)
