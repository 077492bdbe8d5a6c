"""Merge the needs of every enabled algorithm and view into one forward and the fewest backward passes.

Needs with the same target and the same rule share one backward (guided backprop and guided
Grad-CAM share the guided input gradient when their targets coincide); each backward takes the
gradient with respect to every tensor any of them wants in one ``torch.autograd.grad`` call.
Grad-CAM's standard gradient at its layer only walks the network's tail.
"""

from __future__ import annotations

from dataclasses import dataclass

from convscope.algorithms import get
from convscope.request import ViewRequest
from convscope.views import View
from convscope.vocabulary import INPUT, Grad, Needs, Rule, Target


@dataclass(frozen=True)
class Pass:
    """One backward: the gradient of ``target`` under ``rule`` w.r.t. every tensor in ``wrt``."""

    target: Target
    rule: Rule
    wrt: tuple[str, ...]

    def grads(self) -> tuple[Grad, ...]:
        return tuple(Grad(w, self.target, self.rule) for w in self.wrt)


@dataclass(frozen=True)
class Job:
    """One enabled algorithm with its resolved target and layer."""

    name: str
    target: Target
    layer: str | None


@dataclass(frozen=True)
class Plan:
    """What one frame computes.

    Attributes:
        jobs: the enabled algorithms.
        capture: layers whose outputs to keep, as ``(name, needs_gradient)`` pairs.
        passes: the backward passes, standard rule first.
        input_grad: whether the input tensor must require grad.
        guided: whether any pass uses a non-standard rule, guided or deconvnet (the ReLU hooks are then needed).
        views: the views the frame shows, in display order.
    """

    jobs: tuple[Job, ...]
    capture: tuple[tuple[str, bool], ...]
    passes: tuple[Pass, ...]
    input_grad: bool
    guided: bool
    views: tuple[View, ...] = ()

    @property
    def gradient(self) -> bool:
        return bool(self.passes)


def make_plan(request: ViewRequest, views: tuple[View, ...] = ()) -> Plan:
    """The plan for a resolved request (layer names and target layers filled in) and its views."""
    jobs: list[Job] = []
    activations: dict[str, bool] = {}
    wanted: list[Needs] = [view.needs(request) for view in views]
    for name in request.algorithms:
        algo = get(name)
        target = request.target_for(algo.target_role)
        layer = request.cam_layer if algo.uses_layer else None
        jobs.append(Job(name, target, layer))
        wanted.append(algo.needs(target, layer))
    merged: dict[tuple[Target, Rule], list[str]] = {}
    for needs in wanted:
        for layer_name in needs.activations:
            activations.setdefault(layer_name, False)
        for grad in needs.grads:
            wrt = merged.setdefault((grad.target, grad.rule), [])
            if grad.wrt not in wrt:
                wrt.append(grad.wrt)
            if grad.wrt != INPUT:
                activations[grad.wrt] = True
            if grad.target.kind != "class" and grad.target.layer is not None:
                activations.setdefault(grad.target.layer, False)
    order = sorted(merged.items(), key=lambda kv: kv[0][1] != "standard")
    passes = tuple(Pass(target, rule, tuple(wrt)) for (target, rule), wrt in order)
    return Plan(
        jobs=tuple(jobs),
        capture=tuple(activations.items()),
        passes=passes,
        input_grad=any(INPUT in p.wrt for p in passes),
        guided=any(p.rule != "standard" for p in passes),
        views=views,
    )
