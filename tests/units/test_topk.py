"""The on-device top-k tracker against a brute-force per-channel computation on real photos."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.models.bundle import Preprocessing
from convscope.models.preprocess import resize_crop
from convscope.units.receptive_field import ReceptiveField
from convscope.units.topk import TopKTracker

SIZE = 64


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 12, 3, stride=2, padding=1)

    def forward(self, x):
        return self.c2(F.relu(self.c1(x)))


RF = ReceptiveField("c2", (SIZE // 2, SIZE // 2), (SIZE, SIZE), (2.0, 2.0), (-2.0, -2.0), (2.0, 2.0), "architecture")


@pytest.fixture(scope="module")
def frames(photos):
    """Model inputs (0..255) of photos, with a near-identical copy right after two of them."""
    prep = Preprocessing(input_size=(SIZE, SIZE))
    out = []
    rng = np.random.default_rng(0)
    for i, name in enumerate(["chelsea", "coffee", "astronaut", "rocket"]):
        x = resize_crop(torch.from_numpy(photos[name]).permute(2, 0, 1)[None], prep)[0]
        out.append(x)
        if i < 2:  # "the next video frame": the same picture plus a little noise
            out.append((x + torch.from_numpy(rng.normal(0, 1.0, x.shape)).float()).clamp(0, 255))
        out.append(torch.flip(x, dims=[2]))  # a different scene: mirrored
    return torch.stack(out)


@pytest.fixture(scope="module")
def acts(frames):
    torch.manual_seed(0)
    net = SmallNet().eval()
    with torch.no_grad():
        return net((frames - 128) / 64)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _brute_force(acts: np.ndarray, scenes: list[int], k: int, overlap: float):
    """Per channel, frame by frame, in plain Python: the same rule as the tracker documents."""
    out = []
    for c in range(acts.shape[1]):
        kept: list[dict] = []
        for f in range(acts.shape[0]):
            m = acts[f, c]
            y, x = np.unravel_index(int(np.argmax(m)), m.shape)
            box = RF.box(int(y), int(x))
            cand = {"score": float(m[y, x]), "frame": f, "scene": scenes[f], "pos": (int(y), int(x)), "box": box}
            same = [e for e in kept if e["scene"] == cand["scene"] and _iou(e["box"], box) > overlap]
            if same:
                best = max(same, key=lambda e: e["score"])
                if cand["score"] > best["score"]:
                    kept = [e for e in kept if e not in same] + [cand]
            elif len(kept) < k:
                kept.append(cand)
            else:
                weakest = min(kept, key=lambda e: e["score"])
                if cand["score"] > weakest["score"]:
                    kept[kept.index(weakest)] = cand
        out.append(sorted(kept, key=lambda e: -e["score"]))
    return out


def _scenes(frames: torch.Tensor, dedup: float) -> list[int]:
    thumbs = F.adaptive_avg_pool2d(frames.mean(1, keepdim=True), 16).flatten(1).numpy()
    scenes = [0]
    for i in range(1, len(thumbs)):
        scenes.append(scenes[-1] if np.abs(thumbs[i] - thumbs[i - 1]).mean() < dedup else i)
    return scenes


@pytest.mark.parametrize("batch", [1, 3])
def test_tracker_matches_brute_force(frames, acts, batch):
    k = 3
    tracker = TopKTracker(acts.shape[1], k, rf=RF, patch=16)
    for start in range(0, len(frames), batch):
        rows = range(start, min(start + batch, len(frames)))
        tracker.update(acts[list(rows)], list(rows), images=frames[list(rows)])
    scenes = _scenes(frames, tracker.dedup)
    assert scenes[1] == 0 and scenes[4] == 3  # the noisy copies joined their originals' scenes
    assert len(set(scenes)) == len(frames) - 2
    expected = _brute_force(acts.numpy(), scenes, k, tracker.overlap)
    for c in range(acts.shape[1]):
        got = tracker.entries(c)
        assert [(e.frame, e.position) for e in got] == [(e["frame"], e["pos"]) for e in expected[c]], c
        for e, r in zip(got, expected[c], strict=True):
            assert math.isclose(e.score, r["score"], rel_tol=1e-6)
            assert tuple(e.box) == tuple(float(v) for v in r["box"])
    # session statistics, independently
    maxima = acts.flatten(2).amax(2)
    assert torch.allclose(tracker.mean(), maxima.mean(0), rtol=1e-5)
    assert torch.equal(tracker.active, (maxima > 0).any(0))


def test_without_dedup_it_is_the_plain_top_k(frames, acts):
    """Every frame its own scene and no overlap rule: the k largest per-frame maxima, per channel."""
    k = 4
    tracker = TopKTracker(acts.shape[1], k, rf=RF, patch=0, overlap=2.0, dedup=0)
    tracker.update(acts, list(range(len(frames))))
    maxima = acts.flatten(2).amax(2)  # frames x C
    for c in range(acts.shape[1]):
        order = torch.argsort(maxima[:, c], descending=True)[:k].tolist()
        assert [e.frame for e in tracker.entries(c)] == order


def test_patches_are_the_boxes_of_the_input(frames, acts):
    tracker = TopKTracker(acts.shape[1], 2, rf=RF, patch=16, dedup=0)
    tracker.update(acts, list(range(len(frames))), images=frames)
    for c in (0, 5):
        for e, patch in zip(tracker.entries(c), tracker.patches_of(c), strict=True):
            x0, y0, x1, y1 = (int(v) for v in e.box)
            ref = F.interpolate(frames[e.frame][None, :, y0:y1, x0:x1], size=(16, 16), mode="bilinear",
                                align_corners=False)[0]
            assert (patch.float() - ref).abs().mean() < 12  # roi_align vs a plain resize of the same box


def test_memory_is_bounded(frames, acts):
    tracker = TopKTracker(acts.shape[1], 3, rf=RF, patch=16)
    before = tracker.nbytes
    for i in range(5):
        tracker.update(acts, [i * 100 + j for j in range(len(frames))], images=frames)
    assert tracker.nbytes == before


def test_state_round_trip(frames, acts):
    a = TopKTracker(acts.shape[1], 3, rf=RF, patch=8)
    a.update(acts[:4], range(4), images=frames[:4])
    b = TopKTracker(acts.shape[1], 3, rf=RF, patch=8)
    b.load_state_dict(a.state_dict())
    a.update(acts[4:], range(4, len(frames)), images=frames[4:])
    b.update(acts[4:], range(4, len(frames)), images=frames[4:])
    assert all(a.entries(c) == b.entries(c) for c in range(acts.shape[1]))
