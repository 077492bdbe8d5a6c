"""The predictions panel: the top-k classes with their probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from convscope.views.base import Blob, Frame, HostFrame, Slot, View, round_sig
from convscope.views.registry import register


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


@dataclass
class Predictions:
    """The top-k of one frame, highest first (``Result.predictions`` is ``items``)."""

    items: list[Prediction] = field(default_factory=list)
    view: str = "predictions"
    empty: str | None = None

    def blobs(self) -> tuple[Blob, ...]:
        return ()

    def meta(self) -> Any:
        return [{"index": p.index, "label": p.label, "probability": round_sig(p.probability, 4)} for p in self.items]

    def meta_key(self) -> tuple[str, ...]:
        return (self.view,)

    def images(self) -> dict[str, np.ndarray]:
        return {}


@register
class PredictionsView(View):
    name = "predictions"
    title = "Top-k"
    kind = "bars"
    order = 10
    required = True
    stills = False  # drawn on the summary sheet and written to report.json by the still commands

    def render(self, frame: Frame, slot: Slot) -> None:
        logits = frame.logits.float()
        probs = torch.softmax(logits, dim=1)
        # from the logits, ties to the lower index: the explained top-1 (argmax) is shown first
        indices = torch.sort(logits, dim=1, descending=True, stable=True).indices[:, : frame.request.top_k]
        slot.add("p", probs.gather(1, indices))
        slot.add("i", indices)

    def unpack(self, host: Mapping[str, Any], row: int, frame: HostFrame) -> Predictions:
        labels = frame.labels
        return Predictions([
            Prediction(int(i), labels[int(i)] if int(i) < len(labels) else f"class {int(i)}", float(p))
            for i, p in zip(host["i"][row], host["p"][row], strict=True)
        ])
