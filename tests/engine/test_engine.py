"""Engine behaviour on real photos: predictions, mosaics, FC maps, batches, strategies, plans."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_helpers import MixedReLUNet, seeded, tiny_bundle

from convscope.engine import Engine, Target, ViewRequest
from convscope.models import load_model
from convscope.models.preprocess import to_input
from convscope.render import normalize


@pytest.fixture(scope="module")
def lite0():
    return load_model("efficientnet_lite0")


def test_topk_equals_a_plain_forward(lite0, chelsea):
    with Engine(lite0) as engine:
        res = engine.run(chelsea, ViewRequest(top_k=5))
        no_grad = engine.run(chelsea, ViewRequest(top_k=5, algorithms=()))
    with torch.no_grad():
        probs = torch.softmax(lite0.module(to_input(chelsea, lite0.preprocessing, "cpu")), dim=1)[0]
    p, i = probs.topk(5)
    for r in (res, no_grad):
        assert [q.index for q in r.predictions] == i.tolist()
        np.testing.assert_allclose([q.probability for q in r.predictions], p.numpy(), rtol=1e-4, atol=1e-6)
    assert res.predictions[0].label == "Egyptian cat"
    assert res.maps["gradcam"].target == Target("class", 285)


def _conv_output(module, name, x):
    store = {}
    handle = dict(module.named_modules())[name].register_forward_hook(
        lambda m, i, o: store.setdefault("a", o.clone())
    )
    with torch.no_grad():
        module(x)
    handle.remove()
    return store["a"][0]


@pytest.mark.parametrize("norm", ["channel", "layer"])
def test_mosaic_tile_rc_is_channel_r_times_cols_plus_c(lite0, chelsea, norm):
    layer = "blocks.1.0.conv_pw"
    req = ViewRequest(
        conv_layer=layer, algorithms=(), colormap="gray", normalize=norm, mosaic_width=400, channel=7
    )
    with Engine(lite0) as engine:
        res = engine.run(chelsea, req)
    mosaic = res.activations
    a = _conv_output(lite0.module, layer, to_input(chelsea, lite0.preprocessing, "cpu"))
    c_, h, w = a.shape
    assert (
        mosaic.channels == c_ and mosaic.cols == int(np.ceil(np.sqrt(c_))) and mosaic.rows * mosaic.cols >= c_
    )
    assert mosaic.image.shape == (mosaic.rows * mosaic.tile_h, mosaic.cols * mosaic.tile_w, 3)
    np.testing.assert_allclose(mosaic.ranges[:, 0], a.amin(dim=(1, 2)).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mosaic.ranges[:, 1], a.amax(dim=(1, 2)).numpy(), rtol=1e-4, atol=1e-4)
    a01 = normalize(a, (1, 2) if norm == "channel" else None)
    th, tw = mosaic.tile_h - 1, mosaic.tile_w - 1
    expected_tiles = F.interpolate(a01[:, None], size=(th, tw), mode="nearest-exact")[:, 0]
    expected_tiles = (expected_tiles * 255).round()
    for r, c in [(0, 0), (0, 1), (1, 0), (2, 3), (mosaic.rows - 1, (c_ - 1) % mosaic.cols)]:
        channel = r * mosaic.cols + c
        tile = mosaic.image[
            r * mosaic.tile_h : r * mosaic.tile_h + th, c * mosaic.tile_w : c * mosaic.tile_w + tw, 0
        ]
        assert np.abs(tile.astype(float) - expected_tiles[channel].numpy()).max() <= 1, (r, c)
        # and it is not any other channel's tile
        other = expected_tiles[(channel + 1) % c_].numpy()
        assert np.abs(tile.astype(float) - other).max() > 1
    # the enlarged channel is the selected one
    zoom = F.interpolate(a01[None, 7:8], size=res.channel.shape[:2], mode="nearest-exact")[0, 0]
    assert res.channel_index == 7
    assert np.abs(res.channel[..., 0].astype(float) - (zoom * 255).round().numpy()).max() <= 1


def test_fc_map_cell_rc_is_neuron_and_selected_value(lite0, chelsea):
    req = ViewRequest(
        fc_layer="classifier", neuron=285, algorithms=(), colormap="gray", fc_cell=6, keep_raw=True
    )
    with Engine(lite0) as engine:
        res = engine.run(chelsea, req)
    fc = res.fc
    with torch.no_grad():
        logits = lite0.module(to_input(chelsea, lite0.preprocessing, "cpu"))[0]
    assert fc.neurons == 1000 and fc.cols == 32 and fc.rows == 32 and fc.cell == 6
    assert fc.selected == 285 and fc.selected_value == pytest.approx(float(logits[285]), rel=1e-4)
    assert fc.value_range == pytest.approx((float(logits.min()), float(logits.max())), rel=1e-4)
    levels = (normalize(logits) * 255).round()
    for n in (0, 1, 33, 285, 999):
        r, c = divmod(n, fc.cols)
        assert abs(float(fc.image[r * 6 + 2, c * 6 + 2, 0]) - float(levels[n])) <= 1
    np.testing.assert_allclose(fc.raw, logits.numpy(), rtol=1e-4, atol=1e-4)


def test_run_batch_matches_single_runs_with_own_top1(lite0, chelsea, coffee):
    req = ViewRequest(keep_raw=True)
    with Engine(lite0) as engine:
        batch = engine.run_batch([chelsea, coffee], req)
        singles = [engine.run(chelsea, req), engine.run(coffee, req)]
    assert [r.predictions[0].label for r in batch] == ["Egyptian cat", "espresso"]
    for b, s in zip(batch, singles, strict=True):
        assert b.maps["gradcam"].target == s.maps["gradcam"].target == Target("class", s.predictions[0].index)
        for name in ("gradcam", "guided_backprop", "guided_gradcam"):
            np.testing.assert_allclose(b.maps[name].raw, s.maps[name].raw, rtol=1e-3, atol=1e-5)


def test_batched_and_sequential_strategies_agree(chelsea):
    bundle = tiny_bundle(seeded(MixedReLUNet))
    req = ViewRequest(
        keep_raw=True,
        algorithms=("gradcam", "guided_backprop", "guided_gradcam", "saliency", "gradcam_pp"),
        selection_target=Target("channel", 3, "conv3"),
    )
    with Engine(bundle, strategy="sequential") as seq:
        a = seq.run(chelsea, req)
        assert len(seq.plan(req).passes) == 4  # cam std, cam guided, channel std, channel guided
    with Engine(bundle, strategy="batched") as bat:
        b = bat.run(chelsea, req)
    for name in req.algorithms:
        np.testing.assert_allclose(a.maps[name].raw, b.maps[name].raw, rtol=1e-4, atol=1e-6)
        assert (
            np.array_equal(a.maps[name].image, b.maps[name].image)
            or np.abs(a.maps[name].image.astype(int) - b.maps[name].image).max() <= 1
        )


def test_plan_merges_identical_needs(lite0):
    with Engine(lite0) as engine:
        default = engine.plan(ViewRequest())
        # Grad-CAM's standard gradient at the last conv, and ONE guided input gradient shared by
        # guided backprop and guided Grad-CAM (same target)
        assert [(p.rule, p.wrt) for p in default.passes] == [
            ("standard", ("bn2",)),
            ("guided", ("<input>",)),
        ]
        more = engine.plan(
            ViewRequest(algorithms=("gradcam", "gradcam_pp", "guided_backprop", "guided_gradcam"))
        )
        assert len(more.passes) == 2
        split = engine.plan(ViewRequest(selection_target=Target("channel", 3)))
        assert len(split.passes) == 3
        assert not engine.plan(ViewRequest(algorithms=())).gradient


def test_no_graph_without_gradient_views(lite0, chelsea):
    seen = []
    handle = lite0.module.conv_stem.register_forward_hook(
        lambda m, i, o: seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
    )
    try:
        with Engine(lite0) as engine:
            engine.run(chelsea, ViewRequest(algorithms=()))
            engine.run(chelsea, ViewRequest(algorithms=("gradcam",)))
    finally:
        handle.remove()
    assert seen[-2] == (True, False)
    assert seen[-1] == (False, True)


def test_parameters_never_get_gradients(chelsea):
    module = seeded(MixedReLUNet)
    bundle = tiny_bundle(module)
    for p in module.parameters():
        p.requires_grad_(True)  # a user's model as it comes out of training
    with Engine(bundle) as engine:
        engine.run(chelsea, ViewRequest(algorithms=("gradcam", "guided_backprop", "saliency")))
    assert all(p.grad is None for p in module.parameters())
    assert all(p.requires_grad for p in module.parameters())


def test_result_images_are_ready_to_encode(lite0, chelsea):
    with Engine(lite0) as engine:
        res = engine.run(
            chelsea, ViewRequest(algorithms=("gradcam", "guided_backprop", "guided_gradcam", "saliency"))
        )
    assert res.input.shape == (224, 224, 3) and res.input.dtype == np.uint8
    assert res.input_tensor is None and all(m.raw is None for m in res.maps.values())
    for name, m in res.maps.items():
        assert m.image.shape == (224, 224, 3) and m.image.dtype == np.uint8, name
        assert m.image.std() > 1, name  # not a blank picture
    assert res.maps["gradcam"].overlay.shape == (224, 224, 3)
    assert set(res.timings) == {"preprocess", "forward", "backward", "algorithms", "render", "copy"}
    assert all(v >= 0 for v in res.timings.values())


def test_tensor_frames_and_numpy_frames_agree(chelsea):
    bundle = tiny_bundle(seeded(MixedReLUNet))
    req = ViewRequest(keep_raw=True)
    with Engine(bundle) as engine:
        a = engine.run(chelsea, req)
        b = engine.run(torch.from_numpy(chelsea.copy()), req)
    np.testing.assert_array_equal(a.input, b.input)
    for name in req.algorithms:
        np.testing.assert_array_equal(a.maps[name].raw, b.maps[name].raw)


def test_batched_strategy_with_several_frames(chelsea, coffee):
    """Rows = frames x passes: each frame's blocks must keep its own top-1 and its own maps."""
    bundle = tiny_bundle(seeded(MixedReLUNet))
    req = ViewRequest(keep_raw=True, selection_target=Target("neuron", 2, "fc1"))
    with Engine(bundle, strategy="sequential") as seq:
        a = seq.run_batch([chelsea, coffee], req)
    with Engine(bundle, strategy="batched") as bat:
        b = bat.run_batch([chelsea, coffee], req)
    assert a[0].maps["gradcam"].target != a[1].maps["gradcam"].target or a[0].predictions != a[1].predictions
    for ra, rb in zip(a, b, strict=True):
        assert [p.index for p in ra.predictions] == [p.index for p in rb.predictions]
        for name in req.algorithms:
            assert ra.maps[name].target == rb.maps[name].target
            np.testing.assert_allclose(ra.maps[name].raw, rb.maps[name].raw, rtol=1e-4, atol=1e-6)
    assert not np.allclose(a[0].maps["guided_backprop"].raw, a[1].maps["guided_backprop"].raw)
