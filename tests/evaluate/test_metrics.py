"""The metrics against their definitions on toy models whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from convscope.evaluate import metrics
from convscope.evaluate.randomize import parametrised_layers, randomize_top, stage_cuts

H = W = 16


def _mask_model(mask: torch.Tensor):
    """Score = the fraction of the mask's pixels still equal to the original image (1 at the start)."""
    x0 = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1)) + 1.0  # never 0: removal is visible

    def score(batch: torch.Tensor, i):
        kept = (batch == x0).all(1).float()  # (k, H, W)
        return (kept * mask).flatten(1).sum(1) / mask.sum()

    return x0, score


def _expected(order_hits: np.ndarray, steps: int) -> tuple[float, np.ndarray]:
    """Curve and trapezoid AUC of 'fraction of mask pixels not yet removed' for a removal order."""
    n = len(order_hits)
    counts = [round(k * n / steps) for k in range(steps + 1)]
    curve = np.array([1 - order_hits[:c].sum() / order_hits.sum() for c in counts])
    return float(np.trapezoid(curve, dx=1 / steps)), curve


@pytest.mark.parametrize("importance_kind", ["perfect", "inverse", "random"])
def test_deletion_equals_the_closed_form_on_a_mask_model(importance_kind):
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(H, W)
    mask[4:9, 3:12] = 1  # 45 of 256 pixels
    x0, score = _mask_model(mask)
    imp = {"perfect": mask + 0.01 * torch.rand(H, W, generator=g),
           "inverse": 1 - mask + 0.01 * torch.rand(H, W, generator=g),
           "random": torch.rand(H, W, generator=g)}[importance_kind]
    steps = 16
    auc, curve = metrics.deletion(score, x0, imp[None], steps)
    order = np.argsort(-imp.flatten().numpy(), kind="stable")
    want_auc, want_curve = _expected(mask.flatten().numpy()[order], steps)
    np.testing.assert_allclose(curve[0].numpy(), want_curve, atol=1e-6)
    assert float(auc[0]) == pytest.approx(want_auc, abs=1e-6)
    if importance_kind == "perfect":  # the mask goes first: the curve hits 0 at 45/256 of the way
        assert float(auc[0]) < 0.1
    if importance_kind == "inverse":
        assert float(auc[0]) > 0.8


def test_insertion_is_the_mirror_of_deletion_on_a_mask_model():
    mask = torch.zeros(H, W)
    mask[0:4, 0:16] = 1
    x0, score = _mask_model(mask)
    imp = mask + 0.001 * torch.arange(H * W).view(H, W).flip(0)
    steps = 8
    ins, curve = metrics.insertion(score, x0, imp[None], steps, start=torch.zeros_like(x0))
    dele, dcurve = metrics.deletion(score, x0, imp[None], steps)
    np.testing.assert_allclose(curve[0].numpy(), 1 - dcurve[0].numpy(), atol=1e-6)
    assert float(ins[0]) == pytest.approx(1 - float(dele[0]), abs=1e-6)


def test_auc_is_the_trapezoid_rule():
    c = torch.tensor([[1.0, 0.5, 0.25, 0.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(metrics.auc(c).numpy(), [np.trapezoid(r, dx=1 / 3) for r in c.numpy()], rtol=1e-6)


def test_ranks_are_stable_and_most_important_first():
    imp = torch.tensor([[[0.5, 2.0], [0.5, -1.0]]])
    assert metrics.ranks(imp).tolist() == [[1, 0, 2, 3]]


def test_spearman_equals_scipy_with_ties():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 5, (4, 50), generator=g).float()
    b = a + torch.randn(4, 50, generator=g)
    got = metrics.spearman(a, b).numpy()
    want = [spearmanr(x, y).statistic for x, y in zip(a.numpy(), b.numpy(), strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_impute_solves_the_laplace_equation_on_removed_pixels():
    """Kept pixels on a linear ramp: the harmonic fill of a hole in it is the ramp itself."""
    ramp = torch.linspace(0, 1, W).expand(1, 1, H, W).clone()
    removed = torch.zeros(1, 1, H, W, dtype=torch.bool)
    removed[..., 5:11, 5:11] = True
    filled = metrics.impute(ramp, removed, iterations=400)
    np.testing.assert_allclose(filled.numpy(), ramp.numpy(), atol=1e-4)
    assert torch.equal(filled[~removed.expand_as(filled)], ramp[~removed.expand_as(ramp)])


def test_road_ranks_a_perfect_map_above_an_inverse_one():
    mask = torch.zeros(H, W)
    mask[2:10, 2:10] = 1
    w = (mask * 5 - 1).flatten()
    x = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(2))

    def score(batch, i):  # a linear "model": weighted sum squashed to (0, 1)
        return torch.sigmoid((batch.flatten(1) * w).sum(1) / 20)

    good = metrics.road(score, x, mask.expand(2, H, W), seed=0)
    bad = metrics.road(score, x, (1 - mask).expand(2, H, W), seed=0)
    assert (good["score"] > bad["score"]).all()
    assert torch.equal(metrics.road(score, x, mask.expand(2, H, W), seed=0)["score"], good["score"])  # seeded


def test_cascading_randomisation_goes_top_down_and_is_seeded():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 12 * 12, 3))
    layers = parametrised_layers(net)
    assert layers == ["0", "2", "4"]
    assert stage_cuts(3, 3) == [1, 2, 3] and stage_cuts(50, 4) == [1, 12, 25, 38, 50]
    one = randomize_top(net, layers, 1, seed=5)
    assert torch.equal(one[0].weight, net[0].weight) and torch.equal(one[2].weight, net[2].weight)
    assert not torch.equal(one[4].weight, net[4].weight)
    assert torch.equal(randomize_top(net, layers, 1, seed=5)[4].weight, one[4].weight)
    two = randomize_top(net, layers, 2, seed=5)
    assert torch.equal(two[0].weight, net[0].weight) and not torch.equal(two[2].weight, net[2].weight)
    assert float(net[4].weight.detach().std()) == pytest.approx(float(one[4].weight.detach().std()), rel=0.1)
