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

#: How a ReLU passes gradients back: ``standard`` autograd, or ``guided`` (Springenberg et al.:
#: only positive gradients through positive inputs). See :mod:`convscope.engine.rules`.
Rule = Literal["standard", "guided"]
RULES: tuple[Rule, ...] = ("standard", "guided")


@dataclass(frozen=True)
class Target:
    """What a gradient is taken of.

    * ``class``: the pre-softmax logit of class ``index`` (``None`` = the top-1 prediction);
    * ``channel``: the maximum of channel ``index`` of feature map ``layer``;
    * ``neuron``: the value of neuron ``index`` of vector layer ``layer``.
    """

    kind: TargetKind = "class"
    index: int | None = None
    layer: str | None = None

    def as_dict(self) -> dict:
        """The target as ``report.json`` and the wire write it."""
        if self.kind == "class":
            return {"class": self.index}
        key = "channel" if self.kind == "channel" else "neuron"
        return {"layer": self.layer, key: self.index}


@dataclass(frozen=True)
class Grad:
    """The gradient of ``target``'s score with respect to ``wrt`` (a layer name or :data:`INPUT`)."""

    wrt: str
    target: Target
    rule: Rule = "standard"


@dataclass(frozen=True)
class Needs:
    """What one plugin (an algorithm or a view) needs from the pass.

    Attributes:
        activations: layers whose outputs must be captured.
        grads: gradients to take in the merged backward passes.
    """

    activations: tuple[str, ...] = ()
    grads: tuple[Grad, ...] = ()

    def __add__(self, other: Needs) -> Needs:
        return Needs(
            tuple(dict.fromkeys(self.activations + other.activations)),
            tuple(dict.fromkeys(self.grads + other.grads)),
        )
