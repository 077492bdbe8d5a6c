"""What an algorithm is: a declaration of needs plus a function of what the engine captured.

An algorithm never calls the model. It states which activations and which gradients it needs
(of which target, with respect to which layer or the input, under which backward rule); the
engine merges the needs of every enabled algorithm into one forward pass and the fewest
backward passes, then hands each algorithm a :class:`Captured` view to compute its raw map.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, Protocol

import torch

from convscope.vocabulary import Grad, Needs, Rows, Target

TargetRole = Literal["cam", "selection"]
Display = Literal["heatmap", "gradient", "magnitude"]


class Captured(Protocol):
    """What the engine hands to :meth:`Algorithm.compute` (tensors on the device, batch first)."""

    input: torch.Tensor  # B x 3 x H x W, normalised as the network saw it

    def activation(self, layer: str) -> torch.Tensor:
        """The output of ``layer`` for the frames of this call (B x ...)."""
        ...

    def grad(self, need: Grad) -> torch.Tensor:
        """The gradient declared by ``need`` (same shape as what it is taken with respect to)."""
        ...

    def rows(self, rows: Rows) -> RowCaptured:
        """What the extra rows declared by ``rows`` gave (see :class:`Rows`)."""
        ...


class RowCaptured(Protocol):
    """The extra rows of one :class:`Rows` declaration, ``frames * count`` of them, frame-major."""

    input: torch.Tensor  # the rows' input (normalised)
    score: torch.Tensor  # the target's score per row (when the declaration has a target)
    count: int  # rows per frame
    meta: dict  # kind-specific: ``baseline``, ``channels`` (B x count indices), ``flip``, ``factor``

    def activation(self, layer: str) -> torch.Tensor: ...

    def grad(self, wrt: str) -> torch.Tensor: ...


class Algorithm(ABC):
    """Base class of a registered algorithm.

    Class attributes:
        name: registry key, used by ``--algorithms`` and the UI (``snake_case``).
        title: display name.
        summary: one line for ``--help`` and the UI.
        target_role: ``cam`` takes ``ViewRequest.cam_target`` (class-like maps over a layer),
            ``selection`` takes ``ViewRequest.selection_target`` (input-gradient maps that follow
            the selected unit).
        display: how :mod:`convscope.render` shows the raw map: ``heatmap`` (a B x h x w map,
            upsampled, colour-mapped and overlaid on the input), ``gradient`` (B x 3 x H x W, shown
            as an RGB gradient image) or ``magnitude`` (B x 3 x H x W, shown as max |value| per pixel).
        uses_layer: whether the map is computed over ``ViewRequest.cam_layer``.
        order: where it comes in menus and ``--help``; lower first.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    target_role: ClassVar[TargetRole]
    display: ClassVar[Display]
    uses_layer: ClassVar[bool] = False
    order: ClassVar[int] = 1000

    @abstractmethod
    def needs(self, target: Target, layer: str | None) -> Needs:
        """What to capture for ``target`` (resolved) over ``layer`` (the CAM layer or None)."""

    @abstractmethod
    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        """The raw map, batch first, before any normalisation."""

    def __repr__(self) -> str:
        return f"<algorithm {self.name}>"
