"""Encoding a Result into the binary panel messages, and decoding them back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from convscope.request import ViewRequest
from convscope.server.encode import (
    FLOAT32,
    JPEG,
    PNG,
    encode_image,
    encode_result,
    pack_blob,
    unpack_blob,
)


def test_blob_round_trip():
    blob = pack_blob(70000, "map:guided_gradcam", b"\xff\xd8payload")
    assert unpack_blob(blob) == (70000, "map:guided_gradcam", b"\xff\xd8payload")


@pytest.mark.parametrize("photo", ["chelsea", "coffee", "astronaut"])
def test_images_survive_encoding(photo):
    img = getattr(data, photo)()
    png = np.asarray(Image.open(io.BytesIO(encode_image(img, PNG))))
    assert np.array_equal(png, img)
    jpg = np.asarray(Image.open(io.BytesIO(encode_image(img, JPEG, 85)))).astype(int)
    assert jpg.shape == img.shape
    assert np.abs(jpg - img).mean() < 4.0
    small = encode_image(img, JPEG, 30)
    assert len(small) < len(encode_image(img, JPEG, 90))


def test_encode_result_describes_every_panel(built):
    request = ViewRequest(conv_layer="conv1", channel=3, fc_layer="fc2", neuron=4)
    result = built.engine.run(data.chelsea(), request)
    frame = encode_result(result, quality=80, seq=12)
    assert frame.seq == 12 and frame.meta["seq"] == 12 and frame.meta["type"] == "frame"
    names = [p["name"] for p in frame.meta["panels"]]
    assert names[:2] == ["input", "activations"]
    assert {"ranges", "channel", "fc", "map:gradcam", "map:guided_backprop", "map:guided_gradcam"} <= set(names)
    assert len(frame.blobs) == len(names)
    for panel, blob in zip(frame.meta["panels"], frame.blobs, strict=True):
        seq, name, payload = unpack_blob(blob)
        assert (seq, name) == (12, panel["name"])
        if panel["mime"] == FLOAT32 and name == "fc_values":
            assert np.array_equal(np.frombuffer(payload, "<f4"), result.fc.values)
        elif panel["mime"] == FLOAT32:
            ranges = np.frombuffer(payload, "<f4").reshape(-1, 2)
            assert np.array_equal(ranges, result.activations.ranges)
        else:
            image = np.asarray(Image.open(io.BytesIO(payload)))
            assert image.shape[:2] == (panel["height"], panel["width"])
    fc_payload = unpack_blob(frame.blobs[names.index("fc")])[2]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(fc_payload))), result.fc.image)  # PNG: exact
    assert frame.meta["fc"]["selected"] == 4
    assert frame.meta["fc"]["selected_value"] == pytest.approx(result.fc.selected_value, rel=1e-4)
    assert frame.meta["activations"]["channels"] == 8
    assert frame.meta["channel"]["index"] == 3
    assert frame.meta["maps"]["gradcam"]["overlay"] is True
    assert [p["index"] for p in frame.meta["predictions"]] == [p.index for p in result.predictions]
    assert frame.nbytes == sum(map(len, frame.blobs)) and frame.seconds > 0


def test_frame_header_names_blank_panels_and_stays_strict_json():
    """``empty`` per panel (null when it has something to show) and ``value_range`` per map; a
    nan range must not put NaN into the JSON (the page's JSON.parse rejects it)."""
    import json

    from helpers.blank_models import dead_net

    from convscope.engine import Engine
    from convscope.models import Preprocessing
    from convscope.models.bundle import ModelBundle
    from convscope.render import ALL_ZERO

    bundle = ModelBundle(dead_net(), Preprocessing(input_size=(32, 32)), tuple("abcdef"), "dead")
    request = ViewRequest(cam_layer="conv2", conv_layer="conv_dead", channel=1, fc_layer="fc_dead",
                          panels=("input", "predictions", "activations", "channel", "fc"),
                          algorithms=("gradcam", "guided_backprop"))
    with Engine(bundle) as engine:
        result = engine.run(data.chelsea(), request)
    meta = encode_result(result).meta
    assert meta["activations"]["empty"] == meta["channel"]["empty"] == meta["fc"]["empty"] == ALL_ZERO
    assert meta["maps"]["gradcam"]["empty"] == ALL_ZERO and meta["maps"]["gradcam"]["value_range"] == [0.0, 0.0]
    assert meta["maps"]["gradcam"]["layer"] == "conv2"
    gb = meta["maps"]["guided_backprop"]
    assert gb["empty"] is None and gb["value_range"][0] < 0 < gb["value_range"][1]
    result.maps["guided_backprop"].value_range = (float("nan"), float("inf"))
    result.fc.value_range = (float("nan"), 1.0)
    meta = encode_result(result).meta
    assert meta["maps"]["guided_backprop"]["value_range"] == [None, None]
    json.dumps(meta, allow_nan=False)  # strict JSON


def test_fc_values_and_magnitude_scale_travel_with_the_frame(built):
    """The FC map's hover shows every neuron's value (``fc_values``, float32, the layer's own output
    from a forward hook), and a magnitude map's colour bar spans max_c |gradient| (from the raw map)."""
    import torch

    image = data.chelsea()
    request = ViewRequest(conv_layer="conv1", fc_layer="fc2", algorithms=("saliency",), keep_raw=True)
    result = built.engine.run(image, request)
    frame = encode_result(result, seq=3)
    names = [p["name"] for p in frame.meta["panels"]]
    values = np.frombuffer(unpack_blob(frame.blobs[names.index("fc_values")])[2], dtype="<f4")
    seen = {}
    module = dict(built.bundle.module.named_modules())["fc2"]
    handle = module.register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach().float().flatten()))
    try:
        with torch.no_grad():
            built.bundle.module(torch.from_numpy(result.input_tensor).to(built.bundle.device))
    finally:
        handle.remove()
    np.testing.assert_allclose(values, seen["out"].cpu().numpy(), rtol=1e-4, atol=1e-5)
    assert frame.meta["fc"]["values"] is True and len(values) == frame.meta["fc"]["neurons"]
    raw = result.maps["saliency"].raw
    magnitude = np.abs(raw).max(axis=0)
    lo, hi = frame.meta["maps"]["saliency"]["scale_range"]
    assert lo == pytest.approx(magnitude.min(), rel=1e-4, abs=1e-12) and hi == pytest.approx(magnitude.max(), rel=1e-4)
    assert frame.meta["maps"]["saliency"]["value_range"][1] <= hi * (1 + 1e-4)
