"""``convscope evaluate`` on real photos: the files, the table, and one AUC recomputed by hand."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from convscope.engine import Engine, Target, ViewRequest
from convscope.models import load_model

# seeded random weights at 64 px: what is checked is the arithmetic, not the network
MODEL = ("-m", "mobilenet_v3_small", "--weights", "random", "--input-size", "64")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    photos = root / "photos"
    photos.mkdir()
    for name in ("chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()[::2, ::2]).save(photos / f"{name}.png")
    (photos / "zz_bad.png").write_bytes(b"not a png")
    out = root / "out"
    from convscope.cli.main import main

    code = main(
        ["evaluate", "-i", str(photos), "-o", str(out), *MODEL, "--algorithms",
         "gradcam,saliency", "--steps", "4", "--sanity-stages", "1", "--road-fractions", "0.2,0.6", "-q"])
    assert code == 0
    return photos, out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_writes_the_tables_and_plots(evaluated):
    _, out = evaluated
    for name in ("metrics.csv", "summary.csv", "summary.json", "curves.png", "sanity.png"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [(r["item"], r["method"]) for r in rows] == [
        ("chelsea.png", "gradcam"), ("coffee.png", "gradcam"), ("chelsea.png", "saliency"),
        ("coffee.png", "saliency"), ("chelsea.png", "random"), ("coffee.png", "random")]
    summary = json.loads((out / "summary.json").read_text())
    methods = {e["method"]: e for e in summary["methods"]}
    assert set(methods) == {"gradcam", "saliency", "random"}
    n_layers = summary["layers_randomisable"]
    key = f"sanity_rho_top{n_layers}"  # one stage: every layer randomised
    for m in ("gradcam", "saliency"):
        assert -1 <= methods[m][key] <= 1
        assert methods[m]["images"] == 2
    assert "sanity_rho_top1" not in methods["random"]
    for e in methods.values():
        assert 0 <= e["deletion_auc"] <= 1 and 0 <= e["insertion_auc"] <= 1
        assert e["road_score"] == pytest.approx(e["road_lerf"] - e["road_morf"], abs=1e-9)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_deletion_auc_equals_a_loop_written_from_the_definition(evaluated):
    """Grad-CAM's deletion AUC on chelsea, recomputed pixel block by pixel block with numpy."""
    photos, out = evaluated
    row = next(r for r in csv.DictReader((out / "metrics.csv").open())
               if r["item"] == "chelsea.png" and r["method"] == "gradcam")
    bundle = load_model("mobilenet_v3_small", weights="random", input_size=64)
    frame = np.array(Image.open(photos / "chelsea.png").convert("RGB"))
    with Engine(bundle) as engine:
        (r,) = engine.run_batch([frame], ViewRequest(algorithms=("gradcam",), keep_raw=True,
                                                     panels=("input", "predictions"), cam_target=Target("class")))
    cls = r.predictions[0].index
    x = r.input_tensor[0]  # 3 x H x W, normalised
    h, w = x.shape[1:]
    cam = F.interpolate(torch.as_tensor(r.maps["gradcam"].raw)[None, None], size=(h, w), mode="bilinear",
                        align_corners=False)[0, 0].numpy().ravel()
    order = sorted(range(h * w), key=lambda p: (-cam[p], p))
    scores = []
    for k in range(5):  # 4 steps
        img = x.copy().reshape(3, -1)
        img[:, order[: round(k * h * w / 4)]] = 0.0
        with torch.no_grad():
            logits = bundle.module(torch.as_tensor(img.reshape(1, 3, h, w)))
        scores.append(float(torch.softmax(logits, 1)[0, cls]))
    want = sum((a + b) / 2 for a, b in zip(scores, scores[1:], strict=False)) / 4
    assert float(row["class"]) == cls
    assert float(row["deletion_auc"]) == pytest.approx(want, abs=2e-4)
