"""Check a :class:`ViewRequest` against a model and fill in its defaults.

The server runs every browser selection through this before it becomes the next frame's
request, so every failure is a one-line :class:`RequestError` (or :class:`LayerError` for a
layer that does not exist) naming what is wrong and what would be valid.
"""

from __future__ import annotations

import dataclasses

from convscope import views
from convscope.algorithms import get
from convscope.errors import RequestError
from convscope.models.layers import LayerInfo, resolve_layer
from convscope.render.colormaps import check_colormap
from convscope.request import ViewRequest
from convscope.vocabulary import INPUT, Target


def _layer(layers: list[LayerInfo], key: str | int | None, kind: str, default: str | None = None) -> str | None:
    """A layer's qualified name; an exact name wins over an index (``nn.Sequential`` names are digits).

    ``None`` is the default: for a feature map the layer that feeds the head (``default``), for
    a vector the last linear layer.
    """
    if key is None:
        if kind == "conv" and default is not None:
            return default
        pool = [la for la in layers if la.kind == kind] or [
            la for la in layers if (la.spatial if kind == "conv" else la.vector)
        ]
        return pool[-1].name if pool else None
    return resolve_layer(layers, key, kind).name  # type: ignore[arg-type]


def _size(layers: list[LayerInfo], name: str) -> int | None:
    for layer in layers:
        if layer.name == name:
            return layer.channels
    return None


def _check_index(index: int, size: int | None, what: str) -> None:
    if not isinstance(index, int) or isinstance(index, bool):
        raise RequestError(f"{what} must be an integer, got {index!r}")
    if index < 0 or (size is not None and index >= size):
        valid = f"0..{size - 1}" if size is not None else "a non-negative index"
        raise RequestError(f"{what} {index} is out of range (use {valid})")


def _target(t: Target, req: ViewRequest, layers: list[LayerInfo], num_classes: int, field: str) -> Target:
    if not isinstance(t, Target):
        raise RequestError(f"{field} must be a Target, got {type(t).__name__}")
    if t.versus is not None or t.negate:  # contrast / counterfactual: resolve the plain target, keep both
        if t.versus is not None:
            _check_index(t.versus, num_classes or None, f"{field}: versus class")
        plain = _target(dataclasses.replace(t, versus=None, negate=False), req, layers, num_classes, field)
        return dataclasses.replace(plain, versus=t.versus, negate=bool(t.negate))
    if t.kind == "class":
        if t.index is not None:
            _check_index(t.index, num_classes or None, f"{field}: class")
        return Target("class", t.index, None)
    if t.kind == "channel":
        layer = _layer(layers, t.layer, "conv") if t.layer is not None else req.conv_layer
        if layer is None:
            raise RequestError(f"{field}: the model has no feature map to take a channel of")
        index = req.channel if t.index is None else t.index
        _check_index(index, _size(layers, layer), f"{field}: channel of {layer}")
        return Target("channel", index, layer)
    if t.kind == "neuron":
        layer = _layer(layers, t.layer, "linear") if t.layer is not None else req.fc_layer
        if layer is None:
            raise RequestError(f"{field}: the model has no linear layer to take a neuron of")
        index = req.neuron if t.index is None else t.index
        if index is None:
            raise RequestError(f"{field}: a neuron target needs a selected neuron")
        _check_index(index, _size(layers, layer), f"{field}: neuron of {layer}")
        return Target("neuron", index, layer)
    raise RequestError(f"{field}: unknown target kind {t.kind!r} (use class, channel or neuron)")


def _check_scripted(request: ViewRequest, algos: tuple[str, ...]) -> None:
    """TorchScript hides its layers from hooks: only what needs the input gradient alone can run."""
    shown = request.panels if request.panels is not None else views.defaults()
    if any(views.get(name).needs(request).activations for name in shown):
        raise RequestError("TorchScript models hide their layers: show only the input and predictions "
                           "(and input-gradient maps such as saliency)")
    for name in algos:
        algo = get(name)
        role_target = request.target_for(algo.target_role)
        if role_target.kind != "class":
            raise RequestError(f"{name}: TorchScript models hide their layers, so only class targets work")
        needs = algo.needs(Target("class"), None) if not algo.uses_layer else None
        if needs is None or any(g.wrt != INPUT or g.rule != "standard" for g in needs.grads) or needs.activations:
            raise RequestError(
                f"{name} needs the model's layers or a backward rule, which TorchScript hides: "
                "use an algorithm that needs only the input gradient (saliency), or load the model "
                "as a state_dict or ONNX file"
            )


def resolve_request(
    request: ViewRequest,
    layers: list[LayerInfo],
    num_classes: int,
    scripted: bool = False,
    default_layer: str | None = None,
) -> ViewRequest:
    """Validate ``request`` for a model and fill in ``None`` layers and target defaults.

    ``default_layer`` is the layer ``None`` stands for as a feature map (activation grid and CAM
    layer): the one that feeds the head (:func:`convscope.models.layers.head_layer`).

    Raises:
        RequestError: for anything invalid; LayerError: for an unknown layer name or index.
    """
    if not isinstance(request, ViewRequest):
        raise RequestError(f"expected a ViewRequest, got {type(request).__name__}")
    algos = tuple(dict.fromkeys(request.algorithms))
    for name in algos:
        get(name)
    panels = request.panels
    if panels is not None:
        if isinstance(panels, str) or not all(isinstance(p, str) for p in panels):
            raise RequestError(f"panels must be a tuple of view names, got {panels!r}")
        panels = tuple(dict.fromkeys(views.get(p).name for p in panels))
    check_colormap(request.colormap)
    if request.normalize not in ("channel", "layer"):
        raise RequestError(f"unknown normalisation {request.normalize!r}: use channel or layer")
    for field in ("top_k", "mosaic_width", "zoom_size", "fc_cell"):
        value = getattr(request, field)
        if not isinstance(value, int) or value < 1:
            raise RequestError(f"{field} must be a positive integer, got {value!r}")

    conv = _layer(layers, request.conv_layer, "conv", default_layer)
    fc = _layer(layers, request.fc_layer, "linear")
    cam = _layer(layers, request.cam_layer, "conv", default_layer)
    shown = set(panels if panels is not None else views.defaults())
    req = dataclasses.replace(request, conv_layer=conv, fc_layer=fc, cam_layer=cam, algorithms=algos, panels=panels)
    if scripted:
        _check_scripted(req, algos)
    if conv is not None and {"activations", "channel"} & shown:
        _check_index(request.channel, _size(layers, conv), f"channel of {conv}")
    if request.neuron is not None and fc is not None:
        _check_index(request.neuron, _size(layers, fc), f"neuron of {fc}")
    if cam is None and any(get(a).uses_layer for a in algos):
        raise RequestError("the model has no layer with a feature map for Grad-CAM")
    roles = {get(a).target_role for a in algos}
    cam_t = (
        _target(request.cam_target, req, layers, num_classes, "cam_target")
        if "cam" in roles
        else request.cam_target
    )
    sel_t = (
        _target(request.selection_target, req, layers, num_classes, "selection_target")
        if "selection" in roles
        else request.selection_target
    )
    top_k = min(request.top_k, num_classes) if num_classes else request.top_k
    return dataclasses.replace(req, cam_target=cam_t, selection_target=sel_t, top_k=top_k)
