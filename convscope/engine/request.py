"""``ViewRequest``: everything the next frame must show. Small, frozen, cheap to compare.

The live server turns browser selections into a new ``ViewRequest``; the CLI builds one from its
flags. The engine resolves ``None`` layer names (the default layer / the last linear) against the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TargetKind = Literal["class", "channel", "neuron"]
NormMode = Literal["channel", "layer"]

#: Panels that need no gradient: the engine computes only those asked for.
PANELS = ("input", "predictions", "activations", "channel", "fc")


@dataclass(frozen=True)
class Target:
    """What a gradient is taken of.

    * ``class``: the pre-softmax logit of class ``index`` (``None`` = the top-1 prediction);
    * ``channel``: the maximum of channel ``index`` of conv layer ``layer`` (as the seed did);
    * ``neuron``: the value of neuron ``index`` of linear layer ``layer``.

    Two modifiers, for every kind and every algorithm (the score is what gradients are taken of):

    * ``versus``: a **contrast**, "why this rather than class ``versus``": the score minus the
      logit of class ``versus``;
    * ``negate``: the **counterfactual** of the Grad-CAM paper: the negated score, i.e. what
      speaks against the target.
    """

    kind: TargetKind = "class"
    index: int | None = None
    layer: str | None = None
    versus: int | None = None
    negate: bool = False

    def as_dict(self) -> dict:
        if self.kind == "class":
            out: dict = {"class": self.index}
        else:
            key = "channel" if self.kind == "channel" else "neuron"
            out = {"layer": self.layer, key: self.index}
        if self.versus is not None:
            out["versus"] = self.versus
        if self.negate:
            out["counterfactual"] = True
        return out


@dataclass(frozen=True)
class ViewRequest:
    """What to compute for a frame.

    Attributes:
        conv_layer: layer shown as the activation grid, any feature map (``None`` = the default layer:
            the feature map that feeds the head).
        channel: the selected channel of ``conv_layer`` (enlarged in the ``channel`` panel).
        fc_layer: linear layer shown as the FC map (``None`` = the last linear layer).
        neuron: the selected neuron of ``fc_layer`` (``None`` = none selected).
        cam_layer: Grad-CAM's layer, any feature map (``None`` = the default layer).
        cam_target: target of the class-like maps (Grad-CAM, Grad-CAM++, guided Grad-CAM).
        gb_target: target of the input-gradient maps (guided backprop, saliency).
        algorithms: names from the algorithm registry to compute.
        panels: gradient-free panels to compute (subset of :data:`PANELS`).
        colormap: colormap name for single-channel maps (``jet``, ``viridis``, ``inferno``, ``gray``).
        grayscale: render maps in grey instead of the colormap.
        normalize: activation grid normalisation, per ``channel`` or over the whole ``layer``.
        top_k: how many predictions to return.
        mosaic_width: width in pixels of the activation mosaic image.
        zoom_size: side in pixels of the enlarged channel.
        fc_cell: side in pixels of one FC cell.
        keep_raw: also return the raw float maps (host numpy) before any normalisation.
        options: algorithm options as ``(name, value)`` pairs (smoothing, steps, samples, seed,
            top channels: :class:`convscope.algorithms.options.Options`).
    """

    conv_layer: str | None = None
    channel: int = 0
    fc_layer: str | None = None
    neuron: int | None = None
    cam_layer: str | None = None
    cam_target: Target = field(default_factory=Target)
    gb_target: Target = field(default_factory=Target)
    algorithms: tuple[str, ...] = ("gradcam", "guided_backprop", "guided_gradcam")
    panels: tuple[str, ...] = PANELS
    colormap: str = "jet"
    grayscale: bool = False
    normalize: NormMode = "channel"
    top_k: int = 5
    mosaic_width: int = 512
    zoom_size: int = 224
    fc_cell: int = 8
    keep_raw: bool = False
    options: tuple[tuple[str, object], ...] = ()
