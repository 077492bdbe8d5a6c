"""The deletion curve against Quantus's PixelFlipping on a real photo and its saliency map.

Quantus (Hedström et al. 2023) flips input features in order of attribution and records the
class probability after each step. It flips entries of the flattened C x H x W input (the map
broadcast over the channels, so a pixel's three entries come one after the other) and wants a step
that divides H x W; with ``features_in_step`` = H x W / 8 (24 steps over the 3 x H x W entries)
every third point of its curve has whole pixels gone, H x W / 8 more each time: with the same baseline (0 in the normalised input)
those points are our 8-step curve without its unperturbed first point, and our AUC is the trapezoid
over both. Quantus has no insertion metric, and its ROAD imputes differently (noisy linear
imputation), so only deletion is compared here; insertion and ROAD are checked against their
definitions in test_metrics.py.

Quantus is optional (it requires opencv-python, which would sit beside the project's
opencv-python-headless): ``pip install --no-deps quantus cachetools``; the test skips without it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from convscope.evaluate import metrics

quantus = pytest.importorskip("quantus", reason="Quantus is not installed (pip install --no-deps quantus cachetools)")

STEPS = 8


def _tiny_cnn() -> torch.nn.Module:
    """A seeded CNN with 10 classes: its probabilities move when pixels go (no pretrained weights needed)."""
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    with torch.no_grad():
        net[-1].weight *= 30  # confident logits: the probability falls far as pixels go
    return net


def test_deletion_curve_equals_quantus_pixel_flipping():
    model = _tiny_cnn()
    img = torch.as_tensor(np.ascontiguousarray(data.chelsea()[::4, ::4][:64, :64]), dtype=torch.float32)
    x = ((img / 255 - 0.45) / 0.25).permute(2, 0, 1)[None].contiguous()  # 1 x 3 x 64 x 64, normalised
    h, w = x.shape[2:]
    cls = int(model(x).argmax())
    g = x.clone().requires_grad_(True)
    model(g)[0, cls].backward()
    saliency = g.grad[0].abs().sum(0).flatten()  # sum over colours of |d logit / d x|
    # its ranks as the importance (ties broken by position): distinct values, so both sorts agree
    order = torch.as_tensor(np.lexsort((np.arange(h * w), -saliency.numpy())))
    imp = torch.empty(h * w)
    imp[order] = torch.arange(h * w, 0, -1, dtype=torch.float32)
    imp = imp.reshape(h, w)

    def score(batch, i):
        with torch.no_grad():
            return torch.softmax(model(batch), 1)[:, cls]

    ours_auc, ours = metrics.deletion(score, x, imp[None], STEPS)

    metric = quantus.PixelFlipping(features_in_step=h * w // STEPS, perturb_baseline=0.0, normalise=False,
                                   abs=False, disable_warnings=True, display_progressbar=False)
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=np.array([cls]),
                    a_batch=np.broadcast_to(imp.numpy(), (1, 3, h, w)).copy(), channel_first=True, softmax=True,
                    device="cpu")
    theirs = np.asarray(theirs[0])
    assert theirs.shape == (3 * STEPS,)
    theirs = theirs[2::3]  # 3k steps of H*W/8 entries: k * H*W/8 whole pixels
    np.testing.assert_allclose(ours[0, 1:].numpy(), theirs, rtol=1e-4, atol=1e-6)
    first = float(score(x, None)[0])
    want = np.trapezoid(np.concatenate([[first], theirs]), dx=1.0 / STEPS)
    assert float(ours_auc[0]) == pytest.approx(want, abs=1e-6)
    assert ours[0, 0] == pytest.approx(first, abs=1e-6)
    assert first - theirs.min() > 0.05, (first, theirs)  # the class probability falls: a real comparison
