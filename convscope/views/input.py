"""The input panel: the frame as the network sees it (after resize and crop)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from convscope.views.base import JPEG, Blob, Frame, HostFrame, Slot, View
from convscope.views.registry import register


@dataclass
class InputImage:
    """HxWx3 uint8: the model input (``Result.input``)."""

    image: np.ndarray
    view: str = "input"
    empty: str | None = None

    def blobs(self) -> tuple[Blob, ...]:
        return (Blob(self.view, self.image, JPEG),)

    def meta(self) -> Any:
        return None

    def meta_key(self) -> tuple[str, ...]:
        return (self.view,)

    def images(self) -> dict[str, np.ndarray]:
        return {"": self.image}


@register
class InputView(View):
    name = "input"
    title = "Input"
    kind = "image"
    order = 0
    required = True
    stills = False  # the still commands put the input on their summary sheet themselves

    def render(self, frame: Frame, slot: Slot) -> None:
        slot.add("image", frame.image)

    def unpack(self, host: Mapping[str, Any], row: int, frame: HostFrame) -> InputImage:
        return InputImage(host["image"][row])
