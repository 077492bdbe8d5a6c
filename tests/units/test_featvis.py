"""Feature visualisation: it excites its unit, it can be cancelled, it is cached."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from convscope.units.featvis import (
    Cancelled,
    FeatureVis,
    channel_activation,
    fft_param,
    spectrum_scale,
    to_rgb,
)

STEPS, SIZE = 24, 48


@pytest.fixture(scope="module")
def lite0(units_models):
    bundle, layers = units_models("efficientnet_lite0")
    return bundle, layers["blocks.2"]


def test_parametrisation():
    # a zero spectrum is mid grey; the spectrum's scale is 1 / max(f, 1 / size), f in cycles per pixel
    img = to_rgb(torch.zeros(3, 8, 5, 2), spectrum_scale(8, 8), 8, 8)
    assert img.shape == (1, 3, 8, 8) and torch.allclose(img, torch.full_like(img, 0.5))
    s = spectrum_scale(8, 8)
    assert s[0, 0] == 8 and s[0, 1] == 8 and s[1, 1] == pytest.approx(1 / (2 * (1 / 8) ** 2) ** 0.5)


def test_it_excites_the_unit_far_more_than_random_images_and_photos(lite0, photos):
    bundle, layer = lite0
    fv = FeatureVis(bundle)
    channel = 3
    img = fv.render(layer, channel, steps=STEPS, size=SIZE)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    as_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        got = float(channel_activation(bundle, layer, channel, as_t(img)))
        noise = channel_activation(bundle, layer, channel, torch.rand(8, 3, SIZE, SIZE, generator=gen))
        crops = torch.cat([torch.nn.functional.interpolate(as_t(p), size=(SIZE, SIZE), mode="area")
                           for p in photos.values()])
        real = channel_activation(bundle, layer, channel, crops)
    baseline = max(float(noise.max()), float(real.max()))
    assert got > baseline + 3 * float(torch.cat([noise, real]).std())
    assert got > 2 * abs(baseline)


def test_cancel_and_progress(lite0):
    bundle, layer = lite0
    stop = threading.Event()
    seen = []

    def progress(step, total):
        seen.append((step, total))
        if step == 2:
            stop.set()

    with pytest.raises(Cancelled):
        FeatureVis(bundle).render(layer, 1, steps=50, size=32, progress=progress, cancel=stop)
    assert seen == [(1, 50), (2, 50)]


def test_cached_per_model_layer_channel(lite0, tmp_path):
    bundle, layer = lite0
    fv = FeatureVis(bundle, cache_dir=tmp_path)
    a = fv.render(layer, 5, steps=3, size=32)
    calls = []
    b = FeatureVis(bundle, cache_dir=tmp_path).render(layer, 5, steps=3, size=32,
                                                      progress=lambda s, t: calls.append((s, t)))
    assert np.array_equal(a, b) and calls == [(3, 3)]  # from disk: no optimisation step ran
    assert fv.cached(layer.name, 6, 3, 32) is None


def test_a_unit_silent_on_the_grey_start_is_still_visualised():
    # conv with zero-sum (edge) weights and a negative bias, then ReLU: the near-grey starting image
    # leaves it at 0 everywhere, so its gradient is exactly zero; louder restarts find it
    from torch import nn

    from convscope.models import ModelBundle, Preprocessing, discover_layers

    conv = nn.Conv2d(3, 1, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=torch.float32).expand(1, 3, 3, 3))
        conv.bias.fill_(-3.0)
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2)).eval()
    bundle = ModelBundle(net, Preprocessing(input_size=(32, 32)), ("a", "b"), "silent")
    layer = {la.name: la for la in discover_layers(bundle)}["1"]
    start = to_rgb(fft_param(32, 32, torch.Generator().manual_seed(0)), spectrum_scale(32, 32), 32, 32)
    assert float(channel_activation(bundle, layer, 0, start)) == 0.0  # as the optimisation starts
    img = FeatureVis(bundle).render(layer, 0, steps=12, size=32)
    x = torch.as_tensor(img).permute(2, 0, 1)[None].float() / 255
    assert float(channel_activation(bundle, layer, 0, x)) > 0.1
