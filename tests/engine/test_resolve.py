"""``Engine.resolve``: defaults filled in, every invalid selection a one-line error."""

from __future__ import annotations

import pytest
from engine_helpers import MixedReLUNet, seeded, tiny_bundle

from convscope.engine import Engine, Target, ViewRequest
from convscope.errors import LayerError, RequestError


@pytest.fixture(scope="module")
def engine():
    with Engine(tiny_bundle(seeded(MixedReLUNet))) as e:
        yield e


def test_defaults_are_the_map_that_feeds_the_head_and_the_last_linear_layer(engine):
    # the ReLU6 after conv4 (its output is pooled into the head), not conv4 itself
    req = engine.resolve(ViewRequest(selection_target=Target("channel"), neuron=2, cam_target=Target("neuron")))
    assert (req.conv_layer, req.fc_layer, req.cam_layer) == ("relu6", "fc2", "relu6")
    assert engine.default_layer == "relu6"
    assert req.selection_target == Target("channel", 0, "relu6")
    assert req.cam_target == Target("neuron", 2, "fc2")
    assert engine.resolve(req) == req  # idempotent
    assert [layer.name for layer in engine.conv_layers] == ["conv1", "conv2", "conv3", "conv4"]
    assert [layer.name for layer in engine.linear_layers] == ["fc1", "fc2"]


def test_layers_by_index_and_top_k_clamped(engine):
    req = engine.resolve(ViewRequest(conv_layer="0", fc_layer=-2, top_k=50))
    assert (req.conv_layer, req.fc_layer, req.top_k) == ("conv1", "fc1", 6)


@pytest.mark.parametrize(
    ("request_", "error", "match"),
    [
        (ViewRequest(algorithms=("gradcamm",)), RequestError, "did you mean: gradcam"),
        (ViewRequest(conv_layer="conv9"), LayerError, "conv9"),
        (ViewRequest(channel=16), RequestError, r"channel of relu6 16 is out of range \(use 0..15\)"),
        (ViewRequest(channel=-1), RequestError, "out of range"),
        (ViewRequest(neuron=6), RequestError, r"use 0..5"),
        (ViewRequest(cam_target=Target("class", 6)), RequestError, "class 6 is out of range"),
        (ViewRequest(selection_target=Target("neuron")), RequestError, "needs a selected neuron"),
        (ViewRequest(selection_target=Target("channel", 3, "fc1")), LayerError, "fc1"),
        (ViewRequest(selection_target=Target("pixel")), RequestError, "unknown target kind"),
        (ViewRequest(colormap="rainbow"), RequestError, "unknown colormap"),
        (ViewRequest(normalize="global"), RequestError, "normalisation"),
        (ViewRequest(panels=("inputs",)), RequestError, "did you mean: input"),
        (ViewRequest(top_k=0), RequestError, "top_k"),
    ],
)
def test_invalid_requests_are_one_line_errors(engine, request_, error, match):
    with pytest.raises(error, match=match) as info:
        engine.resolve(request_)
    assert "\n" not in str(info.value)


def test_run_validates_too(engine, chelsea):
    with pytest.raises(RequestError):
        engine.run(chelsea, ViewRequest(channel=99))


def test_lists_from_json_are_accepted(engine):
    req = engine.resolve(ViewRequest(algorithms=["gradcam"], panels=["input", "predictions"]))
    assert req.algorithms == ("gradcam",) and req.panels == ("input", "predictions")
