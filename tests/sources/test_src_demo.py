"""The built-in demo: offline, changing frames, looping, and a classifier that sees the change."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.media import mean_abs_diff

from convscope.sources import open_source
from convscope.sources.demo import FPS, HOLD_SECONDS, PHOTOS

HOLD = round(HOLD_SECONDS * FPS)  # frames per photo
TOUR = HOLD * len(PHOTOS)


def test_demo_frames_move_and_loop() -> None:
    with open_source("demo", realtime=False) as src:
        info = src.info
        frames = [f for _, f in zip(range(TOUR + 5), src, strict=False)]
        assert src.state.status == "playing"
    assert (info.kind, info.width, info.height, info.fps, info.live) == ("demo", 640, 480, FPS, False)
    assert [f.index for f in frames] == list(range(TOUR + 5))
    assert all(f.image.shape == (480, 640, 3) and f.image.flags["C_CONTIGUOUS"] for f in frames[:3])
    # Consecutive frames differ a little (a slow pan), frames a second apart differ a lot.
    small = mean_abs_diff(frames[10].image, frames[11].image)
    assert 0 < small < mean_abs_diff(frames[10].image, frames[40].image)
    # Different photos are far apart.
    mids = [frames[k * HOLD + HOLD // 2].image for k in range(len(PHOTOS))]
    assert min(mean_abs_diff(a, b) for i, a in enumerate(mids) for b in mids[i + 1 :]) > 20
    # It loops: the second tour starts where the first did, with later timestamps.
    assert np.array_equal(frames[TOUR].image, frames[0].image)
    assert frames[TOUR].timestamp > frames[TOUR - 1].timestamp


def test_demo_without_loop_ends_after_one_tour() -> None:
    with open_source("demo", realtime=False, loop=False) as src:
        assert sum(1 for _ in src) == TOUR


def test_realtime_demo_latest_is_paced_and_never_repeats() -> None:
    with open_source("demo", realtime=True) as src:
        got = [src.latest(timeout=2.0) for _ in range(5)]
    indices = [f.index for f in got if f is not None]
    assert len(indices) == 5 and indices == sorted(set(indices))


@pytest.mark.slow
def test_classifier_top1_changes_across_the_demo() -> None:
    from convscope.models import load_model
    from convscope.models.preprocess import to_input

    bundle = load_model("efficientnet_lite0")
    with open_source("demo", realtime=False, loop=False) as src:
        frames = [f.image for f in src]
    labels = []
    with torch.no_grad():
        for k in range(len(PHOTOS)):
            x = to_input(frames[k * HOLD + HOLD // 3], bundle.preprocessing, bundle.device)
            labels.append(bundle.labels[int(bundle.module(x).argmax(1))])
    assert len(set(labels)) == len(PHOTOS), labels
    assert "cat" in labels[0].lower(), labels  # chelsea comes first
