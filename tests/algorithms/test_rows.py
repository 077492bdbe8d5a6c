"""The batched-row methods (Integrated Gradients, SmoothGrad, SmoothGrad², Score-CAM, Ablation-CAM,
augmentation and eigen smoothing) against captum and pytorch-grad-cam, the pass count of a request
with every method on, contrast targets on rows, and seeded reproducibility.

References (Pearson r >= 0.999 on the same input tensor, layer, target, steps, noise and channels):

* Integrated Gradients: captum ``IntegratedGradients(method="riemann_middle")``, same baseline, steps;
* SmoothGrad / SmoothGrad²: captum ``Saliency(abs=False)`` on the same noisy inputs, averaged (the
  noise is rebuilt from the seed by the documented recipe: ``randn`` of a ``torch.Generator``
  seeded with the seed, times ``noise * (max x - min x)``), plain and squared;
* Score-CAM: pytorch-grad-cam ``ScoreCAM.get_cam_weights`` on the same K channels' activations;
* Ablation-CAM: pytorch-grad-cam ``AblationCAM.get_cam_weights`` with its channel choice set to ours;
* aug smoothing: pytorch-grad-cam ``GradCAM(..., aug_smooth=True)`` (ttach's flips and
  multiplications), at the input size;
* eigen smoothing: the sign-corrected first component of pytorch-grad-cam's Grad-CAM weights times
  the activations (``eigen_smooth`` leaves the sign to LAPACK; see test_zoo_reference.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from algo_helpers import pearson
from captum.attr import IntegratedGradients, Saliency
from pytorch_grad_cam import AblationCAM, GradCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction
from skimage import data
from test_zoo_reference import reference_captures
from torch import nn

import convscope.algorithms as algorithms
from convscope.engine import Engine, Target, ViewRequest
from convscope.models import ModelBundle, Preprocessing
from convscope.models.labels import generic_labels

R_MIN = 0.999
ROWS = ("integrated_gradients", "smoothgrad", "smoothgrad_sq", "scorecam", "ablationcam")
K, STEPS, SAMPLES, SEED, NOISE = 4, 4, 4, 7, 0.15
OPTIONS = (("top_channels", K), ("steps", STEPS), ("samples", SAMPLES), ("seed", SEED), ("noise", NOISE))


def noisy_inputs(x: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(SEED)
    noise = torch.randn((1, SAMPLES, *x.shape[1:]), generator=gen)
    sigma = NOISE * (x.max() - x.min())
    return (x.unsqueeze(1) + sigma * noise)[0]


@pytest.mark.parametrize(
    "name", ["resnet50", "efficientnet_lite0", pytest.param("vgg16", marks=pytest.mark.slow)]
)
def test_row_methods_match_references(name, small_zoo, chelsea):
    bundle = small_zoo(name)
    with Engine(bundle) as engine:
        req = ViewRequest(keep_raw=True, algorithms=ROWS, options=OPTIONS)
        layer_name = engine.resolve(req).cam_layer
        res = engine.run(chelsea, req)
        smooth = engine.run(chelsea, ViewRequest(keep_raw=True, algorithms=("gradcam",),
                                                 options=(("aug_smooth", True),)))
        eigen = engine.run(chelsea, ViewRequest(keep_raw=True, algorithms=("gradcam",),
                                                options=(("eigen_smooth", True),)))
    x = torch.from_numpy(res.input_tensor.copy())
    cls = res.predictions[0].index
    model = bundle.module
    layer = dict(model.named_modules())[layer_name]
    prep = bundle.preprocessing
    black = (-torch.tensor(prep.mean) / torch.tensor(prep.std)).view(1, 3, 1, 1).expand_as(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ig = IntegratedGradients(model).attribute(x, baselines=black, target=cls, n_steps=STEPS,
                                                  method="riemann_middle")
        noisy = noisy_inputs(x).requires_grad_()
        grads = Saliency(model).attribute(noisy, target=cls, abs=False)
    assert pearson(ig, res.maps["integrated_gradients"].raw) >= R_MIN
    assert pearson(grads.mean(0), res.maps["smoothgrad"].raw) >= R_MIN
    assert pearson(grads.pow(2).mean(0), res.maps["smoothgrad_sq"].raw) >= R_MIN
    # Score-CAM and Ablation-CAM over the K channels of largest mean activation
    acts, layer_grads = reference_captures(model, layer, x, cls)
    channels = np.argsort(-acts[0].mean(axis=(1, 2)), kind="stable")[:K]
    targets = [ClassifierOutputTarget(cls)]
    score = ScoreCAM(model, [layer])
    score.activations_and_grads.release()
    w = score.get_cam_weights(x, layer, targets, acts[:, channels], None)
    ref = np.maximum((w[0][:, None, None] * acts[0, channels]).sum(0), 0)
    assert pearson(ref, res.maps["scorecam"].raw) >= R_MIN
    ablation = AblationCAM(model, [layer], batch_size=K)
    ablation.activations_and_grads.release()
    ablation.ablation_layer.activations_to_be_ablated = lambda a, ratio=1.0: _set(ablation, channels)
    with torch.no_grad():
        w = ablation.get_cam_weights(x, layer, targets, acts, None)
    ref = np.maximum((w[0][:, None, None] * acts[0]).sum(0), 0)
    assert np.count_nonzero(w[0]) <= K
    assert pearson(ref, res.maps["ablationcam"].raw) >= R_MIN
    # smoothing options
    cam = GradCAM(model, [layer])
    cam.compute_input_gradient = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = cam(input_tensor=x, targets=targets, aug_smooth=True)[0]
    finally:
        cam.activations_and_grads.release()
    assert smooth.maps["gradcam"].raw.shape == ref.shape == tuple(x.shape[-2:])
    assert pearson(ref, smooth.maps["gradcam"].raw) >= R_MIN
    weighted = layer_grads.mean(axis=(2, 3), keepdims=True) * acts
    ref = np.maximum(get_2d_projection_with_sign_correction(weighted)[0], 0)
    assert pearson(ref, eigen.maps["gradcam"].raw) >= R_MIN


def _set(ablation, channels):
    ablation.ablation_layer.indices = np.int32(channels)
    return ablation.ablation_layer.indices


def _tiny() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()


@pytest.fixture(scope="module")
def tiny():
    module = _tiny()
    bundle = ModelBundle(module, Preprocessing(input_size=(16, 16)), generic_labels(5), "tiny")
    with Engine(bundle) as engine:
        yield module, engine


@pytest.mark.parametrize("strategy", ["sequential", "batched"])
def test_every_method_on_counts_its_passes(tiny, strategy, monkeypatch):
    """Every registered method on, augmentation smoothing too, two frames: the frame's own forward
    plus ONE forward of every extra row; one backward per (target, rule) of the frame's plan and ONE
    for all rows that share the target (IG, SmoothGrad, SmoothGrad², the augmented CAM rows)."""
    module, engine = tiny
    engine.strategy = strategy
    options = (("aug_smooth", True), ("top_channels", None), ("steps", 3), ("samples", 5))
    req = ViewRequest(algorithms=algorithms.names(), cam_layer="2", options=options)
    plan = engine.plan(req)
    assert [p.rule for p in plan.passes] == ["standard", "guided", "deconvnet"]
    batches, grads = [], []
    handle = engine.prepared.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    real = torch.autograd.grad

    def counting(*args, **kwargs):
        grads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    try:
        results = engine.run_batch([data.astronaut(), data.coffee()], req)
    finally:
        handle.remove()
    frames, channels = 2, 8
    copies = len(plan.passes) if strategy == "batched" else 1
    rows_per_frame = 3 + 5 + 6 + channels + (channels + 1)  # IG, noise, augment, masks, ablations
    assert batches == [frames * copies, frames * rows_per_frame]
    assert len(grads) == (1 if strategy == "batched" else len(plan.passes)) + 1
    assert set(results[0].maps) == set(algorithms.names())
    assert all(m.empty is None for m in results[0].maps.values())


def test_rows_follow_contrast_targets_and_seeds(tiny):
    """IG and SmoothGrad are linear in the score: the contrast A vs B is map(A) - map(B). Score-CAM
    of a counterfactual contrast, written out: s_k = -(y_A - y_B) on x * H_k, softmax, weighted sum."""
    module, engine = tiny
    img = data.astronaut()
    a, b = 1, 3

    def raw(name, target, **opts):
        req = ViewRequest(algorithms=(name,), cam_layer="2", cam_target=target, selection_target=target, keep_raw=True,
                          options=tuple({"top_channels": None, **opts}.items()))
        return engine.run(img, req)

    for name in ("integrated_gradients", "smoothgrad"):
        both = raw(name, Target("class", a, versus=b)).maps[name].raw
        np.testing.assert_allclose(
            both, raw(name, Target("class", a)).maps[name].raw - raw(name, Target("class", b)).maps[name].raw,
            rtol=1e-4, atol=1e-6,
        )
    assert np.array_equal(raw("smoothgrad", Target("class", a)).maps["smoothgrad"].raw,
                          raw("smoothgrad", Target("class", a)).maps["smoothgrad"].raw)
    assert not np.allclose(raw("smoothgrad", Target("class", a)).maps["smoothgrad"].raw,
                           raw("smoothgrad", Target("class", a), seed=1).maps["smoothgrad"].raw)
    res = raw("scorecam", Target("class", a, versus=b, negate=True))
    x = torch.from_numpy(res.input_tensor.copy()) if res.input_tensor is not None else None
    req = ViewRequest(algorithms=("scorecam",), cam_layer="2", keep_raw=True)
    x = torch.from_numpy(engine.run(img, req).input_tensor.copy())
    acts = module[:3](x).detach()[0]
    scores = []
    for k in range(acts.shape[0]):
        up = torch.nn.functional.interpolate(acts[k][None, None], size=x.shape[-2:], mode="bilinear",
                                             align_corners=True)[0, 0]
        mask = (up - up.min()) / (up.max() - up.min() + 1e-8)
        logits = module(x * mask)[0].detach()
        scores.append(-(logits[a] - logits[b]))
    w = torch.softmax(torch.stack(scores), dim=0)
    expected = torch.relu((w[:, None, None] * acts).sum(0)).numpy()
    np.testing.assert_allclose(res.maps["scorecam"].raw, expected, rtol=1e-4, atol=1e-6)
