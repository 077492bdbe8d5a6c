"""What an algorithm is: a declaration of needs plus a function of what the engine captured.

An algorithm never calls the model. It states which activations and which gradients it needs
(of which target, with respect to which layer or the input, under which backward rule); the
engine merges the needs of every enabled algorithm into one forward pass and the fewest
backward passes, then hands each algorithm a :class:`Captured` view to compute its raw map.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import torch

from convscope.engine.request import Target
from convscope.engine.rules import Rule

#: ``Grad.wrt`` value meaning "the network's (normalised) input tensor".
INPUT = "<input>"

TargetRole = Literal["cam", "selection"]
Display = Literal["heatmap", "gradient", "magnitude"]


@dataclass(frozen=True)
class Grad:
    """The gradient of ``target``'s score with respect to ``wrt`` (a layer name or :data:`INPUT`)."""

    wrt: str
    target: Target
    rule: Rule = "standard"


RowKind = Literal["interpolate", "noise", "augment", "mask", "ablate"]


@dataclass(frozen=True)
class Rows:
    """Extra input rows an algorithm needs, run by the engine as one batched forward (issue 13).

    Every frame gets ``count`` rows of this ``kind`` (``None``: one per channel of ``params``'s
    ``layer``, or its ``top`` channels); :mod:`convscope.engine.rows` builds them from the frame:

    * ``interpolate``: ``baseline + (i + 0.5) / count * (x - baseline)`` (Integrated Gradients;
      params ``baseline``: ``black`` or ``blur``);
    * ``noise``: ``x + N(0, sigma^2)``, ``sigma = noise * (max x - min x)`` per frame, drawn from
      ``seed`` (SmoothGrad; params ``noise``);
    * ``augment``: ``x`` and its horizontal flip, each times 0.9, 1 and 1.1 (augmentation smoothing);
    * ``mask``: ``x`` times each channel of ``layer``'s activations, upsampled and min-max scaled
      (Score-CAM; params ``layer``, ``top``);
    * ``ablate``: the frame as it is, then once per channel with that channel of ``layer`` set to
      zero (Ablation-CAM; params ``layer``, ``top``).

    ``target``: whose score the rows' ``score`` and gradients are of (None: forward only);
    ``wrt``: gradients wanted (the rows' input :data:`INPUT` and/or layer names), under ``rule``;
    ``activations``: layers whose outputs on the rows to keep. Equal declarations are run once,
    and the rows of every declaration with the same target and rule share one backward.
    """

    kind: RowKind
    count: int | None
    seed: int = 0
    params: tuple[tuple[str, object], ...] = ()
    target: Target | None = None
    wrt: tuple[str, ...] = ()
    rule: Rule = "standard"
    activations: tuple[str, ...] = ()

    def param(self, name: str, default: object = None) -> object:
        return dict(self.params).get(name, default)


@dataclass(frozen=True)
class Needs:
    """Everything one algorithm needs from the pass: activations of layers, gradients, extra rows."""

    activations: tuple[str, ...] = ()
    grads: tuple[Grad, ...] = ()
    rows: tuple[Rows, ...] = ()


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
            ``selection`` takes ``ViewRequest.gb_target`` (input-gradient maps).
        display: how :mod:`convscope.engine.render` shows the raw map: ``heatmap`` (a B x h x w map,
            upsampled, colour-mapped and overlaid on the input), ``gradient`` (B x 3 x H x W, shown
            as an RGB gradient image) or ``magnitude`` (B x 3 x H x W, shown as max |value| per pixel).
        uses_layer: whether the map is computed over ``ViewRequest.cam_layer``.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    target_role: ClassVar[TargetRole]
    display: ClassVar[Display]
    uses_layer: ClassVar[bool] = False

    @abstractmethod
    def needs(self, target: Target, layer: str | None) -> Needs:
        """What to capture for ``target`` (resolved) over ``layer`` (the CAM layer or None)."""

    @abstractmethod
    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        """The raw map, batch first, before any normalisation."""

    def __repr__(self) -> str:
        return f"<algorithm {self.name}>"
