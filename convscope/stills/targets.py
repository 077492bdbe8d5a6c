"""Run a batch through the engine once per target: the top-K classes, or one fixed class.

The first target (each image's own top-1, or the fixed class) runs as one batched engine pass.
For rank k >= 2 a request carries one class for the whole batch, so the images are grouped by
their k-th class and each group runs as one batch (similar images, such as a video's frames,
share a pass; at worst it is one pass per image). Algorithms whose
target is fixed by a layer unit (a guided-backprop channel or neuron) run only in the first pass:
their output does not change with the class.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from convscope.engine import Engine, Result, Target, ViewRequest
from convscope.views.maps import MapOutput


def target_role(name: str) -> str:
    """``cam`` when an algorithm takes ``cam_target``, ``selection`` for ``selection_target`` (from the registry)."""
    from convscope import algorithms

    return algorithms.get(name).target_role


def run_targets(
    engine: Engine,
    frames: list[np.ndarray],
    request: ViewRequest,
    top_k: int,
    class_index: int | None = None,
    unit: Target | None = None,
    versus: int | None = None,
    negate: bool = False,
) -> list[list[Result]]:
    """Results per image and per target rank.

    Args:
        engine: the engine.
        frames: RGB uint8 frames of one batch.
        request: everything but the targets.
        top_k: how many top classes to explain (ignored with ``class_index``).
        class_index: explain this class only.
        unit: the target of the input-gradient algorithms (``selection`` role) when it is a
            channel or neuron rather than the class.
        versus: contrast every target with this class (``Target.versus``).
        negate: explain the negated scores (``Target.negate``, the counterfactual).

    Returns:
        ``out[i][k]``: image i's result for its k-th target; ``out[i][0]`` carries every
        algorithm, later ranks only the class-driven ones.
    """
    first = Target("class", class_index, versus=versus, negate=negate)
    req = replace(request, cam_target=first, selection_target=unit or first)
    results = [[r] for r in engine.run_batch(frames, req)]
    if class_index is not None or top_k <= 1:
        return results
    names = tuple(n for n in request.algorithms if unit is None or target_role(n) != "selection")
    if not names:
        return results
    for k in range(1, top_k):
        groups: dict[int, list[int]] = {}  # class -> images whose k-th class it is
        for i, per_image in enumerate(results):
            ranked = per_image[0].predictions
            if k < len(ranked):
                groups.setdefault(ranked[k].index, []).append(i)
        for index, members in groups.items():
            t = Target("class", index, versus=versus, negate=negate)
            req_k = replace(request, algorithms=names, cam_target=t, selection_target=t)
            for i, result in zip(members, engine.run_batch([frames[i] for i in members], req_k), strict=True):
                results[i].append(result)
    return results


def class_of(output: MapOutput, result: Result) -> int | None:
    """The class an output explains (the top-1 when the request left it open)."""
    if output.target.kind != "class":
        return None
    if output.target.index is not None:
        return output.target.index
    return result.predictions[0].index if result.predictions else None


def resolved_target(output: MapOutput, result: Result) -> Target:
    """``output.target`` with an open class filled in."""
    if output.target.kind == "class":
        return replace(output.target, index=class_of(output, result))
    return output.target


def target_slug(target: Target) -> str:
    """A file-name part for a target: ``class285``, ``features.6_ch12``, ``classifier_n3``;
    a contrast adds ``_vs281``, the counterfactual ``_counterfactual``."""
    if target.kind == "class":
        slug = f"class{target.index}"
    else:
        tag = "ch" if target.kind == "channel" else "n"
        slug = f"{target.layer}_{tag}{target.index}"
    if target.versus is not None:
        slug += f"_vs{target.versus}"
    return slug + ("_counterfactual" if target.negate else "")


def describe_target(target: Target, labels: tuple[str, ...]) -> str:
    """A caption for a target: ``class 285 Egyptian cat`` or ``features.6 channel 12``;
    ``... vs class 281 tabby`` for a contrast, ``against ...`` for the counterfactual."""
    if target.kind == "class":
        text = _class_name(target.index, labels)
    else:
        text = f"{target.layer} {target.kind} {target.index}"
    if target.versus is not None:
        text += f" vs {_class_name(target.versus, labels)}"
    return f"against {text}" if target.negate else text


def _class_name(index: int | None, labels: tuple[str, ...]) -> str:
    label = labels[index] if index is not None and 0 <= index < len(labels) else ""
    if label == f"class {index}":  # generic labels: not "class 3 class 3"
        label = ""
    return f"class {index} {label}".strip()
