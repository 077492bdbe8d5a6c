"""The WebSocket message schema: what the page may send, checked before anything changes.

Page -> server (JSON text, at most :data:`MAX_MESSAGE_BYTES`)::

    {"type": "view", <any subset of VIEW_FIELDS>}   change the shared selection (layers, indices, the
                                                    pinned class, ``versus`` (a contrast class),
                                                    ``counterfactual``, ``options`` {name: value or
                                                    null}, bounded by OPTION_BOUNDS)
    {"type": "pause", "paused": true|false}         freeze / resume the input
    {"type": "ack", "seq": N}                       frames up to N arrived (flow control)

Server -> page: ``hello`` (model, layers, algorithms, source), ``state`` (the shared selection,
sent to every viewer when anyone changes it), ``frame`` (the header of a frame whose panels
follow in one binary message, see :mod:`convscope.server.encode`), ``status`` (twice a second)
and ``error`` (the reply to a message that did not fit). The server sends a viewer at most
:data:`~convscope.server.hub.FRAMES_IN_FLIGHT` frames it has not acknowledged, so a client
that never acks gets that many frames and then only control messages.

A message that does not fit raises :class:`~convscope.errors.RequestError` with a one-line
reason; the caller replies with an ``error`` message and changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal

from convscope import views
from convscope.errors import RequestError, suggest
from convscope.request import ViewRequest
from convscope.vocabulary import Target

MAX_MESSAGE_BYTES = 64 * 1024
Selection = Literal["channel", "neuron", "class"]
SELECTIONS = ("channel", "neuron", "class")
NORMALIZE = ("channel", "layer")


@dataclass(frozen=True)
class ModelSpace:
    """What a selection may name: the loaded model's layers and the registered algorithms.

    Attributes:
        conv: name -> channel count of every layer whose output is a feature map (convs, blocks,
            norms, activations, token layers), in execution order (``None``: unknown, as for
            TorchScript models; the engine then checks the index when it runs).
        linear: name -> neuron count of every linear or vector layer, in execution order.
        num_classes: length of the model's label list.
        algorithms: registered algorithm names.
        default_conv: the layer a fresh dashboard shows and explains (the feature map that feeds
            the head), ``None``: the last of ``conv``.
        default_linear: the FC map a fresh dashboard shows (the last linear layer).
    """

    conv: dict[str, int | None]
    linear: dict[str, int | None]
    num_classes: int
    algorithms: tuple[str, ...]
    default_conv: str | None = None
    default_linear: str | None = None
    default_grid: str | None = None  # the activation grid's first layer (models.layers.grid_layer)

    @classmethod
    def from_layers(cls, layers: list, num_classes: int, algorithms: tuple[str, ...]) -> ModelSpace:
        """Build from ``LayerInfo`` objects (``name``, ``kind``, ``shape``)."""
        conv = {la.name: la.channels for la in layers if _selectable(la, "conv")}
        linear = {la.name: la.channels for la in layers if _selectable(la, "linear")}
        default = next((la.name for la in layers if getattr(la, "default", False) and la.name in conv), None)
        linears = [la.name for la in layers if la.kind == "linear" and la.name in linear]
        from convscope.models.layers import grid_layer

        grid = grid_layer(layers) if default is not None else None
        return cls(conv=conv, linear=linear, num_classes=int(num_classes), algorithms=tuple(algorithms),
                   default_conv=default, default_linear=linears[-1] if linears else None,
                   default_grid=grid if grid in conv else None)


@dataclass(frozen=True)
class ViewState:
    """The selection every viewer shares; :meth:`to_request` makes it the next frame's request.

    ``selection`` says what the ``selection``-role algorithms (guided backprop, saliency) explain:
    the selected ``channel``, the selected ``neuron``, or the Grad-CAM ``class``. (Before this
    name, the wire called it ``gb_source``: ``state`` still carries that key and ``view``
    messages still accept it, so older pages and scripts keep working.) ``cam_class`` ``None`` follows the top-1 prediction.
    """

    conv_layer: str | None
    channel: int
    fc_layer: str | None
    neuron: int | None
    cam_layer: str | None
    cam_class: int | None
    selection: Selection
    algorithms: tuple[str, ...]
    grayscale: bool = False
    normalize: str = "channel"
    versus: int | None = None  # the contrast class: every class target explains "class, rather than this one"
    counterfactual: bool = False  # class targets explain what speaks against the class (negated score)
    options: tuple[tuple[str, Any], ...] = ()  # algorithm options that differ from the defaults

    @classmethod
    def initial(cls, space: ModelSpace) -> ViewState:
        """The default layer, channel 0, last linear layer, Grad-CAM on the top-1 class.

        Guided backprop starts on the class too, until a viewer clicks a channel or a neuron: then
        guided backprop and guided Grad-CAM share one guided backward, which keeps a CPU dashboard
        above 0.4x the bare network's FPS (a separate target costs a second full backward).
        """
        cam = space.default_conv or next(reversed(space.conv), None)
        conv = space.default_grid or cam  # the grid starts on a legible middle layer, Grad-CAM on the head
        linear = space.default_linear or next(reversed(space.linear), None)
        wanted = ViewRequest().algorithms
        algorithms = tuple(a for a in wanted if a in space.algorithms)
        return cls(conv_layer=conv, channel=0, fc_layer=linear, neuron=None, cam_layer=cam,
                   cam_class=None, selection="class", algorithms=algorithms)

    def selection_target(self) -> Target:
        if self.selection == "channel" and self.conv_layer is not None:
            return Target("channel", self.channel, self.conv_layer)
        if self.selection == "neuron" and self.neuron is not None and self.fc_layer is not None:
            return Target("neuron", self.neuron, self.fc_layer)
        return self._class_target()

    def _class_target(self) -> Target:
        return Target("class", self.cam_class, versus=self.versus, negate=self.counterfactual)

    def to_request(self, **overrides: Any) -> ViewRequest:
        """The engine request for this selection (``overrides`` go to :class:`ViewRequest`)."""
        fields = dict(
            conv_layer=self.conv_layer, channel=self.channel, fc_layer=self.fc_layer, neuron=self.neuron,
            cam_layer=self.cam_layer, cam_target=self._class_target(),
            selection_target=self.selection_target(), algorithms=self.algorithms, grayscale=self.grayscale,
            normalize=self.normalize, options=self.options,
        )
        fields.update(overrides)
        return ViewRequest(**fields)

    def as_dict(self) -> dict:
        return {
            "conv_layer": self.conv_layer, "channel": self.channel, "fc_layer": self.fc_layer,
            "neuron": self.neuron, "cam_layer": self.cam_layer, "cam_class": self.cam_class,
            "selection": self.selection, "gb_source": self.selection,  # gb_source: the old name, kept
            "algorithms": list(self.algorithms), "grayscale": self.grayscale,
            "normalize": self.normalize, "versus": self.versus, "counterfactual": self.counterfactual,
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class ViewMessage:
    changes: dict


@dataclass(frozen=True)
class PauseMessage:
    paused: bool


@dataclass(frozen=True)
class AckMessage:
    seq: int


Message = ViewMessage | PauseMessage | AckMessage

#: ``gb_source`` is the old name of ``selection``, still accepted.
LEGACY_FIELDS = {"gb_source": "selection"}

VIEW_FIELDS = ("conv_layer", "channel", "fc_layer", "neuron", "cam_layer", "cam_class", "selection",
               "algorithms", "grayscale", "normalize", "versus", "counterfactual", "options")

#: What a page may set of the algorithm options (:class:`convscope.algorithms.options.Options`),
#: with the bounds a shared dashboard accepts: rows cost memory and time, so a message cannot ask
#: for thousands of them.
OPTION_BOUNDS: dict[str, tuple] = {
    "aug_smooth": (bool,), "eigen_smooth": (bool,), "steps": (int, 1, 128), "samples": (int, 1, 128),
    "top_channels": (int, 1, 4096), "noise": (float, 0.0, 1.0), "blur_sigma": (float, 0.0, 100.0),
    "seed": (int, 0, 2**31 - 1), "baseline": (str,),
}


def _int(value: Any, name: str, size: int | None, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer{' or null' if optional else ''}, got {_show(value)}")
    if size is None:  # unknown layer size: only the sign can be checked here
        if value < 0:
            raise RequestError(f"{name} {value} must not be negative")
        return value
    if not 0 <= value < size:
        raise RequestError(f"{name} {value} is out of range (0..{size - 1})" if size else f"{name}: nothing to select")
    return value


def _layer(value: Any, name: str, pool: dict[str, int], what: str) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a layer name, got {_show(value)}")
    if value not in pool:
        raise RequestError(f"unknown {what} {value[:80]!r}{suggest(value, pool)}")
    return value


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices or not isinstance(value, str):
        raise RequestError(f"{name} must be one of {', '.join(choices)}, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_keys(msg: dict, allowed: tuple[str, ...], kind: str) -> None:
    extra = [k for k in msg if k != "type" and k not in allowed]
    if extra:
        raise RequestError(f"unknown field {extra[0][:40]!r} in a {kind!r} message{suggest(extra[0], allowed)}")


def decode(raw: str | bytes | None) -> dict:
    """Parse a text frame into a JSON object, enforcing the size limit."""
    if raw is None:
        raise RequestError("binary messages are not accepted: send JSON text")
    if isinstance(raw, bytes):
        raise RequestError("binary messages are not accepted: send JSON text")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise RequestError(f"message too large ({len(raw)} bytes, the limit is {MAX_MESSAGE_BYTES})")
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        raise RequestError("message is not valid JSON") from None
    if not isinstance(msg, dict):
        raise RequestError("a message must be a JSON object with a 'type'")
    return msg


def parse(raw: str | bytes | None, space: ModelSpace) -> Message:
    """Validate one incoming message against the schema and the loaded model.

    Raises:
        RequestError: one line saying what is wrong; nothing has changed.
    """
    msg = decode(raw)
    kind = msg.get("type")
    if kind == "ack":
        _check_keys(msg, ("seq",), "ack")
        seq = msg.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise RequestError(f"ack needs a non-negative integer seq, got {_show(seq)}")
        return AckMessage(seq)
    if kind == "pause":
        _check_keys(msg, ("paused",), "pause")
        if not isinstance(msg.get("paused"), bool):
            raise RequestError(f"pause needs paused: true or false, got {_show(msg.get('paused'))}")
        return PauseMessage(msg["paused"])
    if kind == "view":
        _check_keys(msg, VIEW_FIELDS + tuple(LEGACY_FIELDS), "view")
        changes = {LEGACY_FIELDS.get(k, k): v for k, v in msg.items() if k != "type"}
        if len(changes) < len(msg) - 1:
            raise RequestError("a 'view' message names selection twice (selection and its old name gb_source)")
        if not changes:
            raise RequestError("a 'view' message must change at least one of: " + ", ".join(VIEW_FIELDS))
        return ViewMessage(changes)
    if not isinstance(kind, str):
        raise RequestError("a message needs a string 'type' (view, pause or ack)")
    raise RequestError(f"unknown message type {kind[:40]!r}{suggest(kind, ('view', 'pause', 'ack'))}")


def apply_view(state: ViewState, changes: dict, space: ModelSpace) -> ViewState:
    """The state after ``changes`` (already known to name only :data:`VIEW_FIELDS`).

    Indices are checked against the layer the message leaves selected: switching the conv layer
    keeps the channel if the new layer has it, else selects channel 0 (same for neurons).

    Raises:
        RequestError: a layer, index or value that does not fit the model.
    """
    new: dict[str, Any] = {}
    if "conv_layer" in changes:
        new["conv_layer"] = _layer(changes["conv_layer"], "conv_layer", space.conv, "conv layer")
    if "fc_layer" in changes:
        new["fc_layer"] = _layer(changes["fc_layer"], "fc_layer", space.linear, "linear layer")
    if "cam_layer" in changes:
        new["cam_layer"] = _layer(changes["cam_layer"], "cam_layer", space.conv, "conv layer")
    conv = new.get("conv_layer", state.conv_layer)
    fc = new.get("fc_layer", state.fc_layer)
    channels = space.conv.get(conv, 0) if conv else 0
    neurons = space.linear.get(fc, 0) if fc else 0
    if "channel" in changes:
        new["channel"] = _int(changes["channel"], "channel", channels)
    elif channels is not None and state.channel >= channels:
        new["channel"] = 0
    if "neuron" in changes:
        new["neuron"] = _int(changes["neuron"], "neuron", neurons, optional=True)
    elif state.neuron is not None and neurons is not None and state.neuron >= neurons:
        new["neuron"] = None
    if "cam_class" in changes:
        new["cam_class"] = _int(changes["cam_class"], "cam_class", space.num_classes, optional=True)
    if "selection" in changes:
        new["selection"] = _choice(changes["selection"], "selection", SELECTIONS)
    if "normalize" in changes:
        new["normalize"] = _choice(changes["normalize"], "normalize", NORMALIZE)
    if "grayscale" in changes:
        if not isinstance(changes["grayscale"], bool):
            raise RequestError(f"grayscale must be true or false, got {_show(changes['grayscale'])}")
        new["grayscale"] = changes["grayscale"]
    if "versus" in changes:
        new["versus"] = _int(changes["versus"], "versus", space.num_classes, optional=True)
    if "counterfactual" in changes:
        if not isinstance(changes["counterfactual"], bool):
            raise RequestError(f"counterfactual must be true or false, got {_show(changes['counterfactual'])}")
        new["counterfactual"] = changes["counterfactual"]
    if "options" in changes:
        new["options"] = _options(state.options, changes["options"])
    if "algorithms" in changes:
        algs = changes["algorithms"]
        if not isinstance(algs, list) or not all(isinstance(a, str) for a in algs):
            raise RequestError(f"algorithms must be a list of names, got {_show(algs)}")
        for a in algs:
            if a not in space.algorithms:
                raise RequestError(f"unknown algorithm {a[:40]!r}{suggest(a, space.algorithms)}")
        if len(set(algs)) != len(algs):
            raise RequestError("algorithms lists a name twice")
        new["algorithms"] = tuple(a for a in space.algorithms if a in algs)  # registry order
    return replace(state, **new)


def _options(current: tuple[tuple[str, Any], ...], change: Any) -> tuple[tuple[str, Any], ...]:
    """``current`` with ``change`` (an object of option: value; null resets one to its default)."""
    from convscope.algorithms.options import Options

    if not isinstance(change, dict):
        raise RequestError(f"options must be an object of option names and values, got {_show(change)}")
    merged = dict(current)
    for name, value in change.items():
        bounds = OPTION_BOUNDS.get(name)
        if bounds is None:
            raise RequestError(f"unknown option {str(name)[:40]!r}{suggest(str(name), tuple(OPTION_BOUNDS))}")
        if value is None:
            merged.pop(name, None)
            continue
        kind = bounds[0]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        else:
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            raise RequestError(f"option {name} must be {kind.__name__}, got {_show(value)}")
        if len(bounds) == 3 and not bounds[1] <= value <= bounds[2]:
            raise RequestError(f"option {name} {value} is out of range ({bounds[1]}..{bounds[2]})")
        merged[name] = float(value) if kind is float else value
    return Options.of(merged).pairs()


def hello_message(model: str, layers: list, labels: tuple[str, ...] | list[str], algorithms: list[dict],
                  source: dict, space: ModelSpace) -> dict:
    """The first message a viewer gets: everything the menus are built from.

    Args:
        model: display name of the model.
        layers: ``LayerInfo`` objects in execution order.
        labels: class names (the FC selection line names output neurons with them).
        algorithms: ``{name, title, summary, target_role}`` per registered algorithm.
        (``views`` lists every registered panel view as ``{name, title, kind}``: the page draws a
        panel it has no element for from that, see :meth:`convscope.views.View.describe`.)
        source: what the source is (kind, spec, width, height, fps, live).
        space: the selectable space (for the limits).
    """
    def layer(la: Any) -> dict:
        return {"name": la.name, "index": la.index, "shape": list(la.shape), "kind": la.kind,
                "layout": getattr(la, "layout", None), "channels": getattr(la, "channels", None),
                "default": bool(getattr(la, "default", False))}

    return {
        "type": "hello",
        "model": model,
        "conv_layers": [layer(la) for la in layers if _selectable(la, "conv")],
        "linear_layers": [layer(la) for la in layers if _selectable(la, "linear")],
        "labels": list(labels),
        "num_classes": space.num_classes,
        "algorithms": algorithms,
        "views": [view.describe() for view in views.all()],
        "source": source,
        "max_message_bytes": MAX_MESSAGE_BYTES,
    }


def _selectable(la: Any, role: str) -> bool:
    """Whether a ``LayerInfo`` can be the activation grid / CAM layer (``conv``) or the FC map (``linear``).

    TorchScript layers have no shapes: their kind decides.
    """
    if not la.shape:
        return la.kind == role
    return bool(la.spatial if role == "conv" else la.vector)
