"""Issue 11, "any model, any layer, never silently wrong": the same checks over many architectures.

For each architecture (torchvision and timm CNNs, ViT / DeiT token models, a channels-last Swin,
seeded random weights, and the real EfficientNet-Lite0), one engine (``tests/helpers/sweep.py``):

* the default Grad-CAM layer outputs the same tensor values as the module pytorch-grad-cam's docs
  recommend for the family (``REFERENCE`` below: the independent table), with the expected layout;
* the default request (every panel, every registered algorithm) and one layer of every kind the
  engine lists (conv, block, norm, act, tokens, linear) as the activation grid and Grad-CAM layer
  (map-like layouts) or the FC panel (vectors), every panel on, with the algorithms whose backward
  stops at the layer (Grad-CAM, Grad-CAM++; input-gradient maps do not depend on the layer and
  cost a full backward each), all without an exception;
* every panel has spread in its 8-bit image or is labelled empty;
* Grad-CAM (at every layer run) against the written-out formula with our own hooks, and guided
  backprop against the written-out guided ReLUs: Pearson r >= 0.999, unless the reference map is
  degenerate (all zero / constant / non-finite), which the engine must then label empty.

``benchmarks/sweep.py MODEL...`` runs the same checks on any model and prints a table.
The whole sweep is one engine per model (module-scoped fixture): about 4 minutes of CPU time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from helpers.sweep import R_MIN, ModelReport, sweep_model
from skimage import data

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Arch:
    spec: str
    #: the module(s) whose output the default layer must equal; the first is pytorch-grad-cam's
    #: recommendation for the family where its docs give one
    reference: tuple[str, ...]
    layout: str
    input_size: int | None = None  # smaller than the model's default where the grid allows
    prefix: int = 0  # class / distillation tokens before the patch tokens (tokens layout)
    grid: tuple[int, int] | None = None
    relu: bool = True  # has ReLU-like activations (else guided backprop is the plain gradient)
    pgc: bool = False  # also compare the default layer's Grad-CAM with pytorch-grad-cam's


ARCHS = [
    # torchvision CNNs
    Arch("resnet18", ("layer4[-1]",), "map", 160),
    Arch("vgg11_bn", ("features[-1]",), "map", 128),  # VGG's adaptive pool makes 7x7 of any grid
    Arch("densenet121", ("features[-1]",), "map", 128),  # norm5; DenseNet's ReLU after it is F.relu
    Arch("mobilenet_v2", ("features[-1]",), "map"),  # after its BN and ReLU6
    Arch("mobilenet_v3_small", ("features[-1]",), "map"),  # after its BN and Hardswish
    Arch("efficientnet_b0", ("features[-1]",), "map", 160, relu=False),  # after its BN and SiLU
    Arch("convnext_tiny", ("features[-1]",), "map", 128, relu=False),
    Arch("regnet_x_400mf", ("trunk_output[-1]",), "map", 160),
    # no docs entry: the class maps after the classifier's ReLU feed the global pooling
    Arch("squeezenet1_1", ("classifier[2]", "features[-1]"), "map", 160),
    Arch("googlenet", ("inception5b",), "map", 160),
    Arch("inception_v3", ("Mixed_7c",), "map", 224),  # 299 natively: Mixed_7c is 5x5 at 224
    Arch("shufflenet_v2_x0_5", ("conv5",), "map"),
    # timm
    Arch("timm:resnet18d", ("layer4[-1]",), "map", 160),
    Arch("timm:mobilevit_xxs", ("final_conv",), "map", relu=False),
    Arch("timm:efficientnet_b0", ("bn2",), "map", 160, relu=False),  # BatchNormAct2d: after BN + SiLU
    Arch("timm:vit_tiny_patch16_224", ("blocks[-1].norm1",), "tokens", prefix=1, grid=(14, 14), relu=False,
         pgc=True),
    Arch("timm:deit_tiny_distilled_patch16_224", ("blocks[-1].norm1",), "tokens", prefix=2, grid=(14, 14),
         relu=False, pgc=True),
    # pytorch-grad-cam's docs take layers[-1].blocks[-1].norm2 (inside the last block's MLP
    # branch); the last spatial output before the pooling is the final norm, B x 7 x 7 x C
    # (timm's Swin-T code, embed_dim 32 and 2 blocks per stage: benchmarks/sweep.py runs the real one)
    Arch("helpers.sweep:small_swin", ("norm",), "channels_last", relu=False, pgc=True),
    # the offline model with its real weights
    Arch("efficientnet_lite0", ("bn2",), "map", pgc=True),  # timm BatchNormAct2d: after BN + ReLU6
]


@pytest.fixture(scope="module", params=ARCHS, ids=lambda a: a.spec.replace("timm:", "timm-").removeprefix("helpers.sweep:"))
def arch(request) -> Arch:
    return request.param


@pytest.fixture(scope="module")
def report(arch: Arch) -> ModelReport:
    """Everything for one model, computed once (one engine) and shared by the tests below."""
    return sweep_model(arch.spec, data.chelsea(), input_size=arch.input_size,
                       references=(arch.reference, arch.layout), pytorch_grad_cam=arch.pgc)


def _r_ok(r: float | None) -> bool:
    return r is not None and not math.isnan(r) and r >= R_MIN


def test_no_errors(report: ModelReport):
    assert not report.errors, "\n".join(report.errors)


def test_default_layer_is_the_feature_map_that_feeds_the_head(report: ModelReport, arch: Arch):
    assert report.default_layer is not None, report.errors
    assert report.default_matches is not None, (
        f"default layer {report.default_layer!r} does not output the same values as "
        f"{' or '.join(report.references)}"
    )
    assert report.layout == arch.layout
    if arch.layout == "tokens":
        assert (report.prefix, report.grid) == (arch.prefix, arch.grid)


def test_every_layer_kind_runs(report: ModelReport):
    assert report.runs, report.errors
    failed = [f"{r.kinds} conv={r.conv_layer} cam={r.cam_layer} fc={r.fc_layer}: {r.error}"
              for r in report.runs if r.error]
    assert not failed, "\n".join(failed)
    ran = {k for r in report.runs if not r.error for k in r.kinds}
    assert ran == set(report.kinds), f"kinds listed {sorted(report.kinds)}, ran {sorted(ran)}"
    for run in report.runs:  # the layers asked for are the layers used
        if run.gradcam_shape_ok is not None:
            assert run.gradcam_shape_ok, f"Grad-CAM at {run.cam_layer}: raw map is not the layer's grid"


def test_panels_structured_or_labelled_empty(report: ModelReport):
    missing = sorted({p for r in report.runs for p in r.empty_missing})
    assert not missing, f"no MapOutput.empty to label these maps: {missing}"
    flat = [f"{p} (conv={r.conv_layer}, cam={r.cam_layer}, fc={r.fc_layer})"
            for r in report.runs for p in r.flat_unlabelled]
    assert not flat, "panels with no spread and no empty label:\n" + "\n".join(flat)


def test_gradcam_matches_reference(report: ModelReport):
    checked = [r for r in report.runs if r.gradcam_ref_degenerate is not None]
    assert checked, "no Grad-CAM was compared"
    bad = []
    for run in checked:
        labelled = "map:gradcam" in run.empty
        if run.gradcam_ref_degenerate:
            if not labelled:
                bad.append(f"{run.cam_layer}: the reference map is degenerate, the engine's is not labelled empty")
        elif labelled:
            bad.append(f"{run.cam_layer}: labelled empty ({run.empty['map:gradcam']}) but the reference has structure")
        elif not _r_ok(run.gradcam_r):
            bad.append(f"{run.cam_layer}: r = {run.gradcam_r}")
    assert not bad, "\n".join(bad)


def test_gradcam_matches_pytorch_grad_cam(report: ModelReport, arch: Arch):
    """pytorch-grad-cam's GradCAM at the default layer (with a reshape_transform for tokens and
    channels-last outputs), compared after bilinear upsampling of our raw map."""
    if not arch.pgc:
        pytest.skip("pytorch-grad-cam is compared on ViT, DeiT, Swin and EfficientNet-Lite0 only")
    if report.runs and report.runs[0].gradcam_ref_degenerate:
        pytest.skip("the reference map is degenerate (see test_gradcam_matches_reference)")
    assert _r_ok(report.gradcam_pgc_r), f"r = {report.gradcam_pgc_r}"


def test_guided_backprop_matches_reference(report: ModelReport):
    assert report.guided_ref_degenerate is not None, "guided backprop was not compared"
    if report.guided_ref_degenerate:
        assert report.guided_empty, "the reference is degenerate, the engine's map is not labelled empty"
    else:
        assert not report.guided_empty, f"labelled empty ({report.guided_empty}) but the reference has structure"
        assert _r_ok(report.guided_r), f"r = {report.guided_r}"


def test_guided_reference_is_not_the_plain_gradient(report: ModelReport, arch: Arch):
    """The written-out guided ReLUs really replaced the model's ReLUs (else the test above proves
    nothing); without ReLU-like activations guided backprop is the plain gradient."""
    r = report.guided_vs_plain_r
    assert r is not None, "no saliency map to compare with"
    if arch.relu:
        assert math.isnan(r) or r < 0.99, f"guided reference = plain gradient (r = {r})"
    else:
        assert _r_ok(r), f"no ReLU, yet guided differs from the plain gradient (r = {r})"
