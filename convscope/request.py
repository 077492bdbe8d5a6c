"""``ViewRequest``: everything the next frame must show. Small, frozen, cheap to compare.

The live server turns browser selections into a new ``ViewRequest``; the CLI builds one from its
flags. The engine resolves ``None`` layer names (the default layer / the last linear) and ``None``
panels (every default view) against the model and the view registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from convscope.vocabulary import Target

NormMode = Literal["channel", "layer"]


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
        cam_target: target of the algorithms whose role is ``cam`` (class-like maps over a layer:
            Grad-CAM, Grad-CAM++, guided Grad-CAM).
        selection_target: target of the algorithms whose role is ``selection`` (input-gradient
            maps that follow the selected unit: guided backprop, saliency).
        algorithms: names from the algorithm registry to compute (each one is shown by a map view).
        panels: names of the other views to compute (:func:`convscope.views.names`); ``None`` =
            every view that is on by default.
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
    selection_target: Target = field(default_factory=Target)
    algorithms: tuple[str, ...] = ("gradcam", "guided_backprop", "guided_gradcam")
    panels: tuple[str, ...] | None = None
    colormap: str = "jet"
    grayscale: bool = False
    normalize: NormMode = "channel"
    top_k: int = 5
    mosaic_width: int = 512
    zoom_size: int = 224
    fc_cell: int = 8
    keep_raw: bool = False
    options: tuple[tuple[str, object], ...] = ()

    def target_for(self, role: str) -> Target:
        """The target of an algorithm whose ``target_role`` is ``role`` (``cam`` or ``selection``)."""
        return self.cam_target if role == "cam" else self.selection_target
