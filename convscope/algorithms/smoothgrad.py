"""SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise",
https://arxiv.org/abs/1706.03825).

The plain input gradient averaged over ``N`` noisy copies of the input::

    map = 1/N sum_i dy/dx (x + e_i),   e_i ~ N(0, sigma^2),   sigma = noise * (max x - min x)

``N = Options.samples`` (default 16) extra rows in one batched forward and one backward;
``noise = Options.noise`` (default 0.15, the paper's 10-20 %); the noise is drawn from
``Options.seed``, so a seed gives the same map every run. SmoothGrad-squared
(:mod:`convscope.algorithms.smoothgrad_sq`) declares the same rows, so both share them and their
backward. Captum's ``NoiseTunnel(Saliency(abs=False), nt_type="smoothgrad")`` on the same noise
computes the same.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.options import current
from convscope.algorithms.registry import register
from convscope.vocabulary import INPUT, Needs, Rows, Target


def noise_rows(target: Target) -> Rows:
    opts = current()
    return Rows(
        "noise", int(opts.samples), seed=int(opts.seed), params=(("noise", float(opts.noise)),),
        target=target, wrt=(INPUT,),
    )


def noisy_gradients(captured: Captured, target: Target) -> torch.Tensor:
    """B x N x 3 x H x W: the input gradients of the N noisy rows of each frame."""
    rows = captured.rows(noise_rows(target))
    g = rows.grad(INPUT)
    return g.view(-1, rows.count, *g.shape[1:])


@register
class SmoothGrad(Algorithm):
    name = "smoothgrad"
    order = 140
    title = "SmoothGrad"
    summary = "the input gradient averaged over noisy copies of the input (seeded, batched rows)"
    target_role = "selection"
    display = "gradient"

    def needs(self, target: Target, layer: str | None) -> Needs:
        return Needs(rows=(noise_rows(target),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        return noisy_gradients(captured, target).mean(dim=1)
