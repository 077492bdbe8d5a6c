"""An algorithm's map: the view every enabled algorithm is shown by.

The algorithm computes a raw map (:mod:`convscope.algorithms`); this view presents it the way
the algorithm's ``display`` says: a heatmap upsampled to the input and blended over it, an RGB
gradient image, or a per-pixel magnitude. One :class:`MapView` exists per algorithm
(:func:`convscope.views.registry.map_view`); on the wire its blob is ``map:<algorithm>`` and its
header entry ``maps.<algorithm>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from convscope import algorithms, render
from convscope.request import ViewRequest
from convscope.views.base import JPEG, Blob, Frame, HostFrame, Slot, View, round_sig
from convscope.vocabulary import Needs, Target


@dataclass
class MapOutput:
    """One algorithm's output for one target.

    Attributes:
        image: HxWx3 uint8 at the input size (heatmap for CAMs, the visualised gradient otherwise).
        overlay: HxWx3 uint8 heatmap blended over the input (CAM-like maps), else None.
        raw: the map before any normalisation (float32), only when ``keep_raw`` was asked:
            Grad-CAM at the layer's resolution after the weighted sum and ReLU (h x w), input
            gradients as 3xHxW.
        rule: the backward rule applied (``standard``, ``guided``, or e.g.
            ``guided (SiLU: standard)`` when some activations had no guided rule).
        empty: None when the map has something to show, else why it is drawn blank: ``all zero:
            ...``, ``constant: ...`` or ``non-finite values (inf/nan)``
            (:func:`convscope.render.empty_reason`).
        value_range: ``(min, max)`` of the raw map (before any normalisation).
        rows: the extra input rows the map took, in words (``32 masked channels``,
            ``16 steps``), None for maps that need none.
    """

    algorithm: str
    target: Target
    layer: str | None
    image: np.ndarray
    overlay: np.ndarray | None = None
    raw: np.ndarray | None = None
    rule: str = "standard"
    empty: str | None = None
    value_range: tuple[float, float] | None = None
    rows: str | None = None

    @property
    def view(self) -> str:
        return f"map:{self.algorithm}"

    def picture(self) -> np.ndarray:
        """What to show: the overlay on the input for CAMs, the map itself otherwise."""
        return self.overlay if self.overlay is not None else self.image

    def blobs(self) -> tuple[Blob, ...]:
        return (Blob(self.view, self.picture(), JPEG),)

    def meta(self) -> Any:
        return {"target": self.target.as_dict(), "layer": self.layer, "rule": self.rule,
                "overlay": self.overlay is not None, "empty": self.empty,
                "value_range": None if self.value_range is None else [round_sig(v) for v in self.value_range],
                "rows": self.rows}

    def meta_key(self) -> tuple[str, ...]:
        return ("maps", self.algorithm)

    def images(self) -> dict[str, np.ndarray]:
        return {"": self.picture()}


class MapView(View):
    """Shows one algorithm's raw map (not registered: :func:`~convscope.views.registry.map_view`)."""

    kind = "image"
    default = False

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithms.get(algorithm)
        self.name = f"map:{algorithm}"  # type: ignore[misc]  # one instance per algorithm
        self.title = self.algorithm.title  # type: ignore[misc]

    def job(self, request: ViewRequest) -> tuple[Target, str | None]:
        """The algorithm's target and layer under ``request``."""
        algo = self.algorithm
        return request.target_for(algo.target_role), request.cam_layer if algo.uses_layer else None

    def needs(self, request: ViewRequest) -> Needs:
        return Needs()  # the algorithm's needs are planned with the algorithm (engine.plan)

    def render(self, frame: Frame, slot: Slot) -> None:
        raw = frame.raws[self.algorithm.name]
        display = self.algorithm.display
        lo, hi = render.value_range(raw, (-2, -1) if display == "heatmap" else (-3, -2, -1))
        slot.add("range", torch.stack([lo, hi], dim=-1))
        if display == "heatmap":
            up = render.resize(raw, tuple(frame.x255.shape[-2:]), mode="bilinear")
            heat = render.colorize(render.normalize(up, (-2, -1)), frame.colormap)
            slot.add("image", heat)
            slot.add("overlay", render.overlay(heat, frame.image))
        elif display == "magnitude":
            slot.add("image", render.colorize(render.normalize(render.magnitude(raw), (-2, -1)), frame.colormap))
        else:
            slot.add("image", render.gradient_image(raw, lo=lo, hi=hi))
        if frame.request.keep_raw:
            slot.add("raw", raw)

    def unpack(self, host: Mapping[str, Any], row: int, frame: HostFrame) -> MapOutput:
        target, layer = self.job(frame.request)
        if target.kind == "class" and target.index is None:
            target = dataclasses.replace(target, index=frame.top1)  # keeps versus / negate
        needs = self.algorithm.needs(target, layer)  # under the request's options (the engine made them current)
        rules = [g.rule for g in needs.grads if g.rule != "standard"]
        lo, hi = (float(v) for v in host["range"][row])
        return MapOutput(
            algorithm=self.algorithm.name,
            target=target,
            layer=layer,
            image=host["image"][row],
            overlay=host["overlay"][row] if "overlay" in host else None,
            raw=host["raw"][row] if "raw" in host else None,
            rule=frame.describe_rule(rules[0] if rules else "standard"),
            empty=render.empty_reason(lo, hi),
            value_range=(lo, hi),
            rows=describe_rows(needs.rows, self._unsmoothed()),
        )

    def _unsmoothed(self) -> str | None:
        """Why augmentation smoothing, asked for, was not applied to this map (None: it was, or not asked)."""
        from convscope.algorithms.options import current

        if current().aug_smooth and getattr(self.algorithm, "aug_smooth", None) is False:
            return "not aug-smoothed"
        return None


#: What one extra input row is, per kind of :class:`~convscope.vocabulary.Rows`.
_ROW_WORDS = {"interpolate": "steps", "noise": "noisy samples", "augment": "augmented copies",
              "mask": "masked channels", "ablate": "ablated channels"}


def describe_rows(rows: tuple, note: str | None = None) -> str | None:
    """``32 masked channels · 6 augmented copies``: the rows a map took, for its caption."""
    words = []
    for r in rows:
        what = _ROW_WORDS.get(r.kind, f"{r.kind} rows")
        words.append(f"{r.count if r.count is not None else 'all'} {what}")
    if note:
        words.append(note)
    return " · ".join(dict.fromkeys(words)) or None
