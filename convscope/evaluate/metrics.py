"""Faithfulness metrics of attribution maps, batched on the device.

All functions take a *score function* ``f(x, i)`` (the target class's softmax probability in
practice): ``i`` an int when every row of ``x`` is a version of image ``i`` (the steps of one
curve, one batch), None when row j is a version of image j; inputs ``x`` of shape ``(N, C, H, W)`` in the model's (normalised) input space, and
importance maps ``(N, H, W)`` (higher = more important).

* **Deletion** (Petsiuk et al. 2018, RISE): remove pixels from the most important down, replacing
  them with a baseline (zeros in the normalised input space, i.e. the dataset mean colour); the score is measured after each of ``steps`` equal
  steps, and the area under that curve (fraction removed on x, score on y, trapezoid rule) is the
  metric: *lower is better*.
* **Insertion**: start from a blurred copy and put back the original pixels, most important first;
  area under the curve, *higher is better*.
* **ROAD-style** (Rong et al. 2022, *remove and debias*): removed pixels are not set to a constant
  (which leaks the mask's shape to the model) but imputed from their kept neighbours (harmonic
  interpolation by Jacobi iterations, plus Gaussian noise), at a list of removal fractions, both
  most-relevant-first (MoRF, lower is better) and least-relevant-first (LeRF, higher is better).
  The score is ``mean(LeRF) - mean(MoRF)``: higher is better.

Pixel order: a stable sort of the importance (ties broken by pixel index), so results are
deterministic. One step removes ``round(k * HW / steps)`` pixels in total after step k.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

ScoreFn = Callable[[torch.Tensor, int | None], torch.Tensor]


def ranks(importance: torch.Tensor) -> torch.Tensor:
    """``(N, H*W)`` rank of each pixel, 0 = the most important (stable: ties by pixel index)."""
    flat = importance.flatten(1).float()
    order = torch.sort(-flat, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return rank


def gaussian_blur(x: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders (the insertion start)."""
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _curve(score: ScoreFn, x: torch.Tensor, importance: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
           steps: int, chunk: int) -> torch.Tensor:
    """Scores ``(N, steps + 1)`` of images that go from ``start`` to ``end`` pixel by pixel in rank order."""
    n, c, h, w = x.shape
    rank = ranks(importance).view(n, 1, h, w)
    counts = [round(k * h * w / steps) for k in range(steps + 1)]
    out = torch.empty(n, steps + 1, device=x.device)
    for i in range(n):  # one image's steps form one batch (in chunks of `chunk`)
        for lo in range(0, steps + 1, chunk):
            ks = torch.tensor(counts[lo:lo + chunk], device=x.device).view(-1, 1, 1, 1)
            swapped = rank[i:i + 1] < ks  # (k, 1, H, W): pixels moved so far
            batch = torch.where(swapped, end[i:i + 1], start[i:i + 1])
            out[i, lo:lo + len(ks)] = score(batch, i)
    return out


def auc(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under curves sampled at equal steps on [0, 1]: ``(N, K+1) -> (N,)``."""
    k = curve.shape[1] - 1
    return (curve[:, 1:] + curve[:, :-1]).sum(1) / (2 * k)


def deletion(score: ScoreFn, x: torch.Tensor, importance: torch.Tensor, steps: int = 20,
             baseline: torch.Tensor | None = None, chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(auc (N,), curve (N, steps+1))``; ``baseline`` defaults to zeros in ``x``'s space."""
    end = torch.zeros_like(x) if baseline is None else baseline.expand_as(x)
    curve = _curve(score, x, importance, x, end, steps, chunk)
    return auc(curve), curve


def insertion(score: ScoreFn, x: torch.Tensor, importance: torch.Tensor, steps: int = 20,
              start: torch.Tensor | None = None, chunk: int = 32, sigma: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(auc (N,), curve (N, steps+1))``, starting from ``start`` (default: a Gaussian blur of ``x``)."""
    begin = gaussian_blur(x, sigma) if start is None else start.expand_as(x)
    curve = _curve(score, x, importance, begin, x, steps, chunk)
    return auc(curve), curve


def impute(x: torch.Tensor, removed: torch.Tensor, iterations: int = 60, noise: float = 0.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``removed`` pixels (``(N,1,H,W)`` bool) from their kept neighbours (ROAD's linear imputation).

    Removed pixels start at the mean of the kept ones and take the mean of their 4-neighbours for
    ``iterations`` Jacobi steps (the harmonic interpolation ROAD solves as a sparse system); kept
    pixels never change. Gaussian noise of std ``noise`` is then added to the imputed pixels.
    """
    keep = (~removed).to(x.dtype)
    mean = (x * keep).sum((2, 3), keepdim=True) / keep.sum((2, 3), keepdim=True).clamp_min(1)
    y = torch.where(removed, mean.expand_as(x), x)
    for _ in range(iterations):
        # edges replicated, the 4-neighbour mean by slices (a grouped conv after a replicate pad is
        # 10-100x slower on small CPU tensors)
        p = torch.cat((y[..., :1, :], y, y[..., -1:, :]), dim=-2)
        p = torch.cat((p[..., :1], p, p[..., -1:]), dim=-1)
        avg = 0.25 * (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:])
        y = torch.where(removed, avg, x)
    if noise:
        eps = torch.randn(y.shape, generator=generator, device="cpu").to(y.device, y.dtype) * noise
        y = torch.where(removed, y + eps, y)
    return y


def road(score: ScoreFn, x: torch.Tensor, importance: torch.Tensor,
         fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9), noise: float = 0.01, iterations: int = 60,
         seed: int = 0) -> dict[str, torch.Tensor]:
    """ROAD-style remove-and-debias: ``{"morf": (N, F), "lerf": (N, F), "score": (N,)}``."""
    n, _, h, w = x.shape
    rank = ranks(importance).view(n, 1, h, w)
    out = {}
    for order in ("morf", "lerf"):
        g = torch.Generator().manual_seed(seed)
        rows = []
        for frac in fractions:
            k = round(frac * h * w)
            removed = rank < k if order == "morf" else rank >= h * w - k
            rows.append(score(impute(x, removed, iterations, noise, g), None))
        out[order] = torch.stack(rows, 1)
    out["score"] = out["lerf"].mean(1) - out["morf"].mean(1)
    return out


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (average ranks for ties)."""
    return pearson(_average_ranks(a.flatten(1).double()), _average_ranks(b.flatten(1).double()))


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = (a.norm(dim=1) * b.norm(dim=1))
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den))


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n per row, tied values sharing their mean rank (as scipy.stats.rankdata)."""
    out = torch.empty_like(v)
    for i, row in enumerate(v):
        sorted_v, order = torch.sort(row, stable=True)
        _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
        ends = torch.cumsum(counts, 0).double()
        mean_rank = ends - (counts.double() - 1) / 2
        out[i, order] = mean_rank[inverse]
    return out
