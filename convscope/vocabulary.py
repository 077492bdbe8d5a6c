"""The words the engine, the algorithms and the views share: targets, backward rules, needs.

This module sits below :mod:`convscope.engine`, :mod:`convscope.algorithms` and
:mod:`convscope.views` and imports none of them, so a plugin can name what it needs without
importing the engine that will satisfy it (and the engine can import every plugin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ``Grad.wrt`` value meaning "the network's (normalised) input tensor".
INPUT = "<input>"

TargetKind = Literal["class", "channel", "neuron"]

#: How a ReLU passes gradients back: ``standard`` autograd, ``guided`` (Springenberg et al.: only
#: positive gradients through positive inputs) or ``deconvnet`` (Zeiler & Fergus: only positive
#: gradients, whatever the input). See :mod:`convscope.engine.rules`.
Rule = Literal["standard", "guided", "deconvnet"]
RULES: tuple[Rule, ...] = ("standard", "guided", "deconvnet")


@dataclass(frozen=True)
class Target:
    """What a gradient is taken of.

    * ``class``: the pre-softmax logit of class ``index`` (``None`` = the top-1 prediction);
    * ``channel``: the maximum of channel ``index`` of feature map ``layer``;
    * ``neuron``: the value of neuron ``index`` of vector layer ``layer``.

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
        """The target as ``report.json`` and the wire write it."""
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
    """What one plugin (an algorithm or a view) needs from the pass.

    Attributes:
        activations: layers whose outputs must be captured.
        grads: gradients to take in the merged backward passes.
        rows: extra input rows to run in one batched forward (:class:`Rows`).
    """

    activations: tuple[str, ...] = ()
    grads: tuple[Grad, ...] = ()
    rows: tuple[Rows, ...] = ()

    def __add__(self, other: Needs) -> Needs:
        return Needs(
            tuple(dict.fromkeys(self.activations + other.activations)),
            tuple(dict.fromkeys(self.grads + other.grads)),
            tuple(dict.fromkeys(self.rows + other.rows)),
        )
