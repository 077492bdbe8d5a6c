"""The WebSocket at /ws: hello, shared state, frames, validation of every incoming message."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from server_helpers import WS, receive_frame, receive_json

from convscope import algorithms

BAD_MESSAGES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('"view"', "JSON object"),
    ('{"type": "explode"}', "unknown message type"),
    ('{"type": 3}', "string 'type'"),
    ('{"channel": 2}', "string 'type'"),
    ('{"type": "view"}', "at least one"),
    ('{"type": "view", "conv_layer": "no.such.layer"}', "unknown conv layer"),
    ('{"type": "view", "conv_layer": "fc2"}', "unknown conv layer"),
    ('{"type": "view", "fc_layer": "conv1"}', "unknown linear layer"),
    ('{"type": "view", "channel": 16}', "out of range"),
    ('{"type": "view", "channel": -1}', "out of range"),
    ('{"type": "view", "channel": 1.5}', "integer"),
    ('{"type": "view", "channel": true}', "integer"),
    ('{"type": "view", "neuron": 10}', "out of range"),
    ('{"type": "view", "cam_class": 10}', "out of range"),
    ('{"type": "view", "algorithms": ["gradcam", "nope"]}', "unknown algorithm"),
    ('{"type": "view", "algorithms": "gradcam"}', "list of names"),
    ('{"type": "view", "algorithms": ["gradcam", "gradcam"]}', "twice"),
    ('{"type": "view", "gb_source": "elsewhere"}', "selection"),
    ('{"type": "view", "selection": "class", "gb_source": "class"}', "twice"),
    ('{"type": "view", "grayscale": "yes"}', "true or false"),
    ('{"type": "view", "channel": 1, "colour": "red"}', "unknown field"),
    ('{"type": "pause"}', "paused"),
    ('{"type": "ack", "seq": -4}', "non-negative"),
    ('{"type": "view", "channel": ' + "[" * 5000 + "]" * 5000 + "}", "not valid JSON"),
    ('{"type": "view", "conv_layer": "' + "x" * 70000 + '"}', "too large"),
]


def decode(payload: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(payload)))


def test_hello_state_and_frames(client):
    with client.websocket_connect(WS) as ws:
        hello = receive_json(ws, "hello")
        assert [la["name"] for la in hello["conv_layers"]] == ["conv1", "relu1", "pool1", "conv2", "relu2"]
        assert hello["conv_layers"][3]["shape"] == [16, 32, 32]
        assert [la["name"] for la in hello["linear_layers"]] == ["pool", "flat", "fc1", "relu3", "fc2"]
        assert [a["name"] for a in hello["algorithms"]] == list(algorithms.names())
        assert all(a["title"] and a["summary"] for a in hello["algorithms"])
        assert hello["labels"][:2] == ["class 0", "class 1"] and hello["num_classes"] == 10
        state = receive_json(ws, "state")
        assert state["conv_layer"] == "relu2" and state["fc_layer"] == "fc2"
        assert state["paused"] is False
        seqs = []
        for _ in range(3):
            meta, parts = receive_frame(ws)
            seqs.append(meta["seq"])
            assert decode(parts["input"]).shape == (64, 64, 3)
            assert decode(parts["map:gradcam"]).shape == (64, 64, 3)
            ranges = np.frombuffer(parts["ranges"], "<f4").reshape(-1, 2)
            assert ranges.shape == (16, 2)
        assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_selection_is_shared_by_all_viewers(client, dashboard):
    with client.websocket_connect(WS) as a, client.websocket_connect(WS) as b:
        receive_json(b, "state")
        a.send_text(json.dumps({"type": "view", "conv_layer": "conv1", "channel": 5}))
        for ws in (a, b):
            state = receive_json(ws, "state")
            while state["conv_layer"] != "conv1":
                state = receive_json(ws, "state")
            assert state["channel"] == 5
        # the next frames are computed with the new selection
        for _ in range(20):
            meta, _ = receive_frame(b)
            if meta["activations"]["layer"] == "conv1":
                break
        assert meta["activations"]["channels"] == 8 and meta["channel"]["index"] == 5
        assert dashboard.pipeline.state.channel == 5


def test_switching_layer_keeps_channel_only_if_it_exists(client, dashboard):
    with client.websocket_connect(WS) as ws:
        ws.send_text(json.dumps({"type": "view", "channel": 12}))
        assert receive_json(ws, "state")["channel"] in (0, 12)  # the first state may predate the change
        ws.send_text(json.dumps({"type": "view", "conv_layer": "conv1"}))
        state = receive_json(ws, "state")
        while state["conv_layer"] != "conv1":
            state = receive_json(ws, "state")
        assert state["channel"] == 0  # conv1 has 8 channels


@pytest.mark.parametrize(("raw", "reason"), BAD_MESSAGES)
def test_bad_message_gets_error_and_changes_nothing(client, dashboard, raw, reason):
    with client.websocket_connect(WS) as ws:
        receive_frame(ws)
        before = dashboard.pipeline.state
        ws.send_text(raw)
        error = receive_json(ws, "error")
        assert reason in error["message"]
        assert "\n" not in error["message"]
        assert dashboard.pipeline.state == before
        receive_frame(ws)  # the stream goes on
        ws.send_text(json.dumps({"type": "view", "channel": 3}))  # and the connection still works
        state = receive_json(ws, "state")
        while state["channel"] != 3:
            state = receive_json(ws, "state")


def test_binary_message_is_refused(client, dashboard):
    with client.websocket_connect(WS) as ws:
        ws.send_bytes(b"\x00\x01binary")
        assert "binary" in receive_json(ws, "error")["message"]
        receive_frame(ws)


def test_pause_freezes_the_frame_but_selections_are_computed(dashboard, client):
    pipeline = dashboard.pipeline
    with client.websocket_connect(WS) as ws:
        receive_frame(ws)
        ws.send_text(json.dumps({"type": "pause", "paused": True}))
        state = receive_json(ws, "state")
        assert state["paused"] is True
        # frames computed before the pause may still be on their way: wait until none comes
        n = pipeline.frames
        ws.send_text(json.dumps({"type": "view", "channel": 7}))
        meta, parts = receive_frame(ws)
        while meta["channel"]["index"] != 7:
            meta, parts = receive_frame(ws)
        frozen = parts["input"]
        ws.send_text(json.dumps({"type": "view", "channel": 9}))
        meta, parts = receive_frame(ws)
        while meta["channel"]["index"] != 9:
            meta, parts = receive_frame(ws)
        assert parts["input"] == frozen  # same frame, new selection
        assert pipeline.frames - n <= 4  # no free-running while paused
        ws.send_text(json.dumps({"type": "pause", "paused": False}))
        for _ in range(50):
            meta, parts = receive_frame(ws)
            if parts["input"] != frozen:
                break
        assert parts["input"] != frozen


def _colourfulness(payload: bytes) -> float:
    rgb = decode(payload).astype(int)
    return float(np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean())


def test_grayscale_toggle_renders_maps_in_grey(client):
    with client.websocket_connect(WS) as ws:
        _, parts = receive_frame(ws)
        assert _colourfulness(parts["channel"]) > 20  # the jet colormap
        ws.send_text(json.dumps({"type": "view", "grayscale": True}))
        for _ in range(30):
            meta, parts = receive_frame(ws)
            if _colourfulness(parts["channel"]) < 2:
                break
        assert _colourfulness(parts["channel"]) < 2
        assert _colourfulness(parts["input"]) > 5  # the input itself keeps its colours
