"""The shared selection: its defaults, how messages change it, and agreement with Engine.resolve."""

from __future__ import annotations

import dataclasses

import pytest

from convscope import algorithms
from convscope.engine import Target
from convscope.errors import RequestError
from convscope.server import protocol
from convscope.server.protocol import AckMessage, PauseMessage, ViewMessage, ViewState, apply_view, parse


@pytest.fixture
def space(built):
    return built.dashboard.space


def test_space_comes_from_the_model_and_the_registry(space):
    # every module with a feature map, and every vector (pooled, flattened, linear, activations on them)
    assert space.conv == {"conv1": 8, "relu1": 8, "pool1": 8, "conv2": 16, "relu2": 16}
    assert space.linear == {"pool": 16, "flat": 16, "fc1": 32, "relu3": 32, "fc2": 10}
    assert (space.default_conv, space.default_linear) == ("relu2", "fc2")
    assert space.num_classes == 10
    assert space.algorithms == algorithms.names()


def test_initial_state_is_the_default_layer_the_last_linear_and_the_top1(space):
    st = ViewState.initial(space)
    assert (st.conv_layer, st.channel, st.fc_layer, st.neuron) == ("relu2", 0, "fc2", None)
    assert st.cam_layer == "relu2" and st.cam_class is None
    assert st.algorithms == ("gradcam", "guided_backprop", "guided_gradcam")
    req = st.to_request()
    assert req.cam_target == Target("class", None) and req.selection_target == Target("class", None)


def test_parse_recognises_the_three_message_types(space):
    assert parse('{"type": "ack", "seq": 7}', space) == AckMessage(7)
    assert parse('{"type": "pause", "paused": false}', space) == PauseMessage(False)
    assert parse('{"type": "view", "channel": 3}', space) == ViewMessage({"channel": 3})


def test_guided_backprop_follows_what_was_clicked_last(space):
    st = ViewState.initial(space)
    # until something is clicked, guided backprop explains the Grad-CAM class (one shared backward)
    assert st.to_request().selection_target == Target("class", None) == st.to_request().cam_target
    st = apply_view(st, {"channel": 4, "selection": "channel"}, space)
    assert st.to_request().selection_target == Target("channel", 4, "relu2")
    st = apply_view(st, {"neuron": 9, "selection": "neuron"}, space)
    assert st.to_request().selection_target == Target("neuron", 9, "fc2")
    st = apply_view(st, {"cam_class": 2, "selection": "class"}, space)
    req = st.to_request()
    assert req.selection_target == Target("class", 2) and req.cam_target == Target("class", 2)
    # a neuron source without a neuron falls back to the class
    st = apply_view(st, {"neuron": None, "selection": "neuron"}, space)
    assert st.to_request().selection_target == Target("class", 2)


def test_switching_layers_drops_indices_the_new_layer_lacks(space):
    st = apply_view(ViewState.initial(space), {"channel": 12, "neuron": 20, "fc_layer": "fc1"}, space)
    assert (st.channel, st.neuron) == (12, 20)
    st = apply_view(st, {"conv_layer": "conv1"}, space)  # 8 channels
    assert st.channel == 0
    st = apply_view(st, {"fc_layer": "fc2"}, space)  # 10 neurons
    assert st.neuron is None
    kept = apply_view(apply_view(st, {"channel": 5}, space), {"conv_layer": "conv2"}, space)
    assert kept.channel == 5


def test_index_is_checked_against_the_layer_named_in_the_same_message(space):
    st = ViewState.initial(space)  # conv2: 16 channels
    with pytest.raises(RequestError, match="out of range"):
        apply_view(st, {"conv_layer": "conv1", "channel": 12}, space)
    assert apply_view(st, {"conv_layer": "conv1", "channel": 7}, space).channel == 7


def test_algorithms_keep_registry_order(space):
    names = list(space.algorithms)
    st = apply_view(ViewState.initial(space), {"algorithms": names[::-1]}, space)
    assert st.algorithms == tuple(names)
    assert apply_view(st, {"algorithms": []}, space).algorithms == ()


CHANGES = [
    {"conv_layer": "conv1", "channel": 7},
    {"fc_layer": "fc1", "neuron": 31, "selection": "neuron"},
    {"neuron": 9, "selection": "neuron"},
    {"cam_layer": "conv1", "cam_class": 9},
    {"algorithms": list(algorithms.names())},
    {"grayscale": True, "normalize": "layer"},
    {"selection": "class"},
    {"cam_class": 2, "versus": 3, "counterfactual": True},
    {"options": {"steps": 4, "top_channels": 8, "aug_smooth": True}},
]


@pytest.mark.parametrize("changes", CHANGES)
def test_every_accepted_state_is_a_request_the_engine_accepts(built, space, changes):
    st = apply_view(ViewState.initial(space), changes, space)
    resolved = built.engine.resolve(st.to_request())
    assert resolved.conv_layer == st.conv_layer and resolved.channel == st.channel
    assert resolved.algorithms == st.algorithms
    assert resolved.grayscale == st.grayscale


def test_state_round_trips_through_its_message_form(space):
    st = apply_view(ViewState.initial(space), CHANGES[1], space)
    msg = st.as_dict()
    back = apply_view(ViewState.initial(space), {k: v for k, v in msg.items()}, space)
    assert back == st
    assert set(msg) - {"gb_source"} == {f.name for f in dataclasses.fields(ViewState)}  # + the old name


def test_hello_lists_layers_in_execution_order(built):
    hello = built.dashboard.hello
    assert hello["type"] == "hello"
    assert [la["index"] for la in hello["conv_layers"] + hello["linear_layers"]] == list(range(10))
    kinds = [(la["name"], la["kind"], la["layout"], la["default"]) for la in hello["conv_layers"]]
    assert kinds[-2:] == [("conv2", "conv", "map", False), ("relu2", "act", "map", True)]
    assert hello["max_message_bytes"] == protocol.MAX_MESSAGE_BYTES
    assert hello["source"]["kind"] == "demo" and hello["source"]["width"] > 0


def test_unknown_layer_sizes_leave_the_range_check_to_the_engine():
    from convscope.models.layers import LayerInfo

    layers = [LayerInfo(0, "conv", "conv", ()), LayerInfo(1, "fc", "linear", ())]  # as TorchScript gives
    space = protocol.ModelSpace.from_layers(layers, 10, ("gradcam",))
    st = apply_view(ViewState.initial(space), {"channel": 40, "neuron": 3}, space)
    assert (st.channel, st.neuron) == (40, 3)
    with pytest.raises(RequestError, match="negative"):
        apply_view(st, {"channel": -1}, space)


def test_gb_source_is_still_accepted_as_the_old_name_of_selection(space):
    """Pages and scripts written before the rename keep working; the state carries both names."""
    msg = parse('{"type": "view", "channel": 2, "gb_source": "channel"}', space)
    assert msg == ViewMessage({"channel": 2, "selection": "channel"})
    st = apply_view(ViewState.initial(space), msg.changes, space)
    assert st.selection == "channel" and st.as_dict()["gb_source"] == "channel"
    with pytest.raises(RequestError, match="twice"):
        parse('{"type": "view", "selection": "class", "gb_source": "class"}', space)


def test_contrast_and_counterfactual_reach_every_class_target(built, space):
    st = apply_view(ViewState.initial(space), {"cam_class": 2, "versus": 7, "counterfactual": True}, space)
    req = st.to_request()
    assert req.cam_target == Target("class", 2, versus=7, negate=True) == req.selection_target
    result = built.engine.run(built.source.latest(10).image, req)
    assert result.maps["gradcam"].target.as_dict() == {"class": 2, "versus": 7, "counterfactual": True}
    st = apply_view(st, {"versus": None, "counterfactual": False}, space)
    assert st.to_request().cam_target == Target("class", 2)
    for bad, why in (({"versus": 10}, "out of range"), ({"versus": "3"}, "integer"),
                     ({"counterfactual": 1}, "true or false")):
        with pytest.raises(RequestError, match=why):
            apply_view(st, bad, space)


def test_options_merge_reset_and_refuse_what_a_page_should_not_ask(built, space):
    st = apply_view(ViewState.initial(space), {"options": {"steps": 4, "aug_smooth": True}}, space)
    assert st.to_request().options == (("aug_smooth", True), ("steps", 4))
    st = apply_view(st, {"options": {"samples": 8, "steps": None}}, space)  # null: back to the default
    assert st.options == (("aug_smooth", True), ("samples", 8))
    assert built.engine.resolve(st.to_request()).options == st.options
    bad = [({"steps": 10**9}, "out of range"), ({"steps": "4"}, "must be int"), ({"steps": True}, "must be int"),
           ({"noise": float("nan")}, "must be float"), ({"stepz": 4}, "unknown option 'stepz'.*steps"),
           ({"aug_smooth": 1}, "must be bool"), ({"baseline": "grey"}, "black or blur")]
    for change, why in bad:
        with pytest.raises(RequestError, match=why):
            apply_view(st, {"options": change}, space)
    with pytest.raises(RequestError, match="must be an object"):
        apply_view(st, {"options": [1]}, space)
    assert parse('{"type": "view", "options": {"steps": 2}}', space) == ViewMessage({"options": {"steps": 2}})
    menu = built.dashboard.hello["options"]
    assert menu["steps"]["default"] == 16 and menu["steps"]["max"] == protocol.OPTION_BOUNDS["steps"][2]
