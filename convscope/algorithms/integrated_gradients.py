"""Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic attribution for deep
networks", https://arxiv.org/abs/1703.01365).

The input minus a baseline, times the gradient averaged along the straight path from the
baseline to the input (a Riemann sum at the midpoints of ``steps`` intervals)::

    map = (x - x') * 1/N sum_{i=0}^{N-1} dy/dx (x' + (i + 0.5)/N (x - x'))

The ``N`` points are extra input rows of one batched forward and one backward
(``Options.steps``, default 16). The baseline ``x'`` (``Options.baseline``) is a black image
(``black``: the normalised value of pixel 0) or the frame blurred with a Gaussian of
``Options.blur_sigma`` pixels (``blur``, Sturmfels et al. 2020, "Visualizing the impact of
feature attribution baselines"). Captum's ``IntegratedGradients(method="riemann_middle")`` with
the same baseline and steps computes the same.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.options import current
from convscope.algorithms.registry import register
from convscope.vocabulary import INPUT, Needs, Rows, Target


def ig_rows(target: Target) -> Rows:
    opts = current()
    params = (("baseline", opts.baseline), ("blur_sigma", float(opts.blur_sigma)))
    return Rows("interpolate", int(opts.steps), params=params, target=target, wrt=(INPUT,))


@register
class IntegratedGradients(Algorithm):
    name = "integrated_gradients"
    order = 130
    title = "Integrated gradients"
    summary = "input minus baseline times the gradient averaged along the path from the baseline (batched rows)"
    target_role = "selection"
    display = "gradient"

    def needs(self, target: Target, layer: str | None) -> Needs:
        return Needs(rows=(ig_rows(target),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        rows = captured.rows(ig_rows(target))
        g = rows.grad(INPUT)
        mean = g.view(-1, rows.count, *g.shape[1:]).mean(dim=1)
        return (captured.input - rows.meta["baseline"]) * mean
