"""The engine as the server and the benchmark see it: a typed seam instead of ``Any``.

:class:`~convscope.engine.Engine` satisfies :class:`FrameEngine`; tests and tools may hand the
server or the bench anything else that does (a recording engine, a remote one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

if TYPE_CHECKING:
    from convscope.models.bundle import ModelBundle
    from convscope.models.layers import LayerInfo
    from convscope.request import ViewRequest
    from convscope.views import Result


class FrameEngine(Protocol):
    """Computes every view of a frame for one loaded model."""

    bundle: ModelBundle
    layers: list[LayerInfo]
    labels: tuple[str, ...]
    num_classes: int

    @property
    def optimization(self) -> str:
        """One line on how the model runs."""
        ...

    def resolve(self, request: ViewRequest) -> ViewRequest:
        """``request`` checked against the model, defaults filled in (one-line errors)."""
        ...

    def run(self, frame: np.ndarray | torch.Tensor, request: ViewRequest | None = None) -> Result:
        """Every view ``request`` asks for on one RGB uint8 frame."""
        ...

    def close(self) -> None:
        """Remove hooks and restore the model."""
        ...
