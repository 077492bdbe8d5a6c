"""``convscope explain``: report.json, raw maps, the cat test and the engine equivalence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli, one_line_error
from PIL import Image

from convscope import algorithms
from convscope.engine import Engine, Target, ViewRequest
from convscope.models import load_model
from convscope.stills.inputs import read_image

MODEL = ("-m", "efficientnet_lite0")
#: few rows for the batched-row methods (the CLI's defaults: every channel, 32 steps and samples)
CHEAP = ("--top-channels", "4", "--steps", "4", "--samples", "4")
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
# Drawn by hand on skimage's chelsea (451 x 300): the cat's head (ears at the top edge, chin at
# the bottom), which leaves out the blurred room on the right and the chest at the bottom left.
CAT_BOX = (40, 0, 395, 300)  # x0, y0, x1, y1
FACE_BOX = (110, 60, 360, 290)  # eyes, nose and mouth


def _explain(capsys, image, outdir, *extra) -> dict:
    out = cli(capsys, "explain", "-i", image, "-o", outdir, *MODEL, *extra)
    assert out.code == 0, out.err
    return json.loads((outdir / "report.json").read_text())


def _mass_centre(cam: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """Centre of mass of a non-negative map in the original image's pixels (stretch policy)."""
    h, w = cam.shape
    ys, xs = (np.arange(h) + 0.5) / h * height, (np.arange(w) + 0.5) / w * width
    total = cam.sum()
    return float((cam.sum(axis=0) * xs).sum() / total), float((cam.sum(axis=1) * ys).sum() / total)


def test_gradcam_of_the_top_cat_class_lies_on_the_cat(capsys, chelsea_path, tmp_path):
    report = _explain(capsys, chelsea_path, tmp_path, "--algorithms", "gradcam", "--save-raw")
    (item,) = report["items"]
    top = item["predictions"][0]
    assert top["index"] in CAT_CLASSES and "cat" in top["label"].lower()
    (output,) = item["outputs"]
    assert output["target"] == {"class": top["index"]}
    cam = np.load(tmp_path / output["raw"])
    x, y = _mass_centre(cam, 451, 300)
    assert CAT_BOX[0] <= x <= CAT_BOX[2] and CAT_BOX[1] <= y <= CAT_BOX[3], (x, y)
    assert FACE_BOX[0] <= x <= FACE_BOX[2] and FACE_BOX[1] <= y <= FACE_BOX[3], (x, y)


def test_gradcam_separates_cat_and_coffee_side_by_side(capsys, tmp_path):
    """A harder case than chelsea alone, whose cat fills the frame: cat left, espresso right."""
    from skimage import data

    coffee = np.asarray(Image.fromarray(data.coffee()).resize((450, 300)))
    pair = np.concatenate([data.chelsea(), coffee], axis=1)  # 901 x 300, the cat on x < 451
    path = tmp_path / "pair.png"
    Image.fromarray(pair).save(path)
    for args, side in ((("--top-k", "1"), "cat"), (("--class", "967"), "coffee")):
        report = _explain(capsys, path, tmp_path / side, "--algorithms", "gradcam", "--save-raw", *args)
        (item,) = report["items"]
        (output,) = item["outputs"]
        if side == "cat":
            assert output["target"]["class"] in CAT_CLASSES
        cam = np.load(tmp_path / side / output["raw"])
        x, _ = _mass_centre(cam, 901, 300)
        assert (x < 451) if side == "cat" else (x > 451), (side, x)


@pytest.mark.slow
def test_report_schema_raw_maps_and_input_tensor(capsys, chelsea_path, tmp_path):
    report = _explain(capsys, chelsea_path, tmp_path, "--top-k", "2", "--save-raw", *CHEAP)
    names = set(algorithms.names())
    assert set(report) == {"model", "items"} and "efficientnet_lite0" in report["model"]
    (item,) = report["items"]
    assert set(item) == {"input", "input_tensor", "predictions", "outputs"}
    assert (tmp_path / item["input"]).resolve() == chelsea_path.resolve()
    assert {o["algorithm"] for o in item["outputs"]} == names
    for pred in item["predictions"]:
        assert set(pred) == {"index", "label", "probability"}
    classes = [p["index"] for p in item["predictions"][:2]]
    for output in item["outputs"]:
        base = {"algorithm", "target", "layer", "image", "raw", "empty", "empty_reason"}
        took_rows = bool(algorithms.get(output["algorithm"]).needs(Target("class", 0), "bn2").rows)
        assert set(output) == base | ({"rows"} if took_rows else set())  # rows: only the maps that took some
        assert output["empty"] is False and output["empty_reason"] is None
        assert output["target"] in ({"class": classes[0]}, {"class": classes[1]})
        assert Image.open(tmp_path / output["image"]).size == (451, 300)  # the input's own size (issue 16)
        raw = np.load(tmp_path / output["raw"])
        assert raw.dtype == np.float32 and np.isfinite(raw).all() and raw.std() > 0
        if output["algorithm"] == "gradcam":
            assert raw.ndim == 2 and raw.min() >= 0 and output["layer"] == "bn2"
        if output["algorithm"] == "guided_backprop":
            assert raw.shape == (3, 224, 224)
    gradcams = [o for o in item["outputs"] if o["algorithm"] == "gradcam"]
    assert [o["target"]["class"] for o in gradcams] == classes  # one per top-k class
    summary = np.asarray(Image.open(tmp_path / "summary.png"))
    assert summary.shape[0] > 224 and summary.shape[1] > 2 * 224

    x = np.load(tmp_path / item["input_tensor"])
    assert x.dtype == np.float32 and x.shape == (1, 3, 224, 224)
    bundle = load_model("efficientnet_lite0")
    with torch.no_grad():
        probs = torch.softmax(bundle.module(torch.from_numpy(x)), dim=1)[0]
    top = torch.topk(probs, len(item["predictions"]))
    assert top.indices.tolist() == [p["index"] for p in item["predictions"]]
    np.testing.assert_allclose(top.values.numpy(), [p["probability"] for p in item["predictions"]], rtol=1e-4)


def test_explain_equals_engine_run(capsys, chelsea_path, tmp_path):
    report = _explain(capsys, chelsea_path, tmp_path, "--save-raw", *CHEAP)
    (item,) = report["items"]
    bundle = load_model("efficientnet_lite0")
    engine = Engine(bundle)
    try:
        # explain's default layer is the one that feeds the head: bn2 (after conv_head's BN and ReLU6)
        request = ViewRequest(cam_layer="bn2", algorithms=tuple(algorithms.names()),
                              cam_target=Target("class"), selection_target=Target("class"), keep_raw=True,
                              options=(("top_channels", 4), ("steps", 4), ("samples", 4)))
        result = engine.run(read_image(chelsea_path), request)
    finally:
        getattr(engine, "close", lambda: None)()
    np.testing.assert_allclose(np.load(tmp_path / item["input_tensor"]), result.input_tensor, rtol=0, atol=1e-6)
    for output in item["outputs"]:
        ours = np.load(tmp_path / output["raw"])
        theirs = result.maps[output["algorithm"]].raw
        scale = float(np.abs(theirs).max())
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * scale, err_msg=output["algorithm"])


def test_help_lists_every_registered_algorithm(capsys):
    out = cli(capsys, "explain", "--help")
    assert out.code == 0
    for name in algorithms.names():
        assert name in out.out
        assert algorithms.get(name).title in out.out


@pytest.mark.slow
def test_folder_report_and_unit_targets(capsys, photo_folder, tmp_path):
    report = _explain(capsys, photo_folder / "set_b", tmp_path, "--algorithms", "gradcam,guided_backprop",
                      "--neuron", "classifier:285", "--batch-size", "4")
    items = report["items"]
    assert len(items) == 16
    first = items[0]
    assert first["input_tensor"] is None and all(o["raw"] is None for o in first["outputs"])
    gb = [o for o in first["outputs"] if o["algorithm"] == "guided_backprop"]
    assert [o["target"] for o in gb] == [{"layer": "classifier", "neuron": 285}]
    folder = tmp_path / first["outputs"][0]["image"].rsplit("/", 1)[0]
    assert (folder / "summary.png").is_file()
    assert folder.relative_to(tmp_path).as_posix() == "img0_chelsea_full"


@pytest.mark.parametrize("args,code,expected", [
    (("--algorithms", "gradcan"), 2, "did you mean: gradcam"),
    (("--neuron", "classifier:1000"), 1, "out of range"),
    (("--channel", "conv_head:x"), 1, "LAYER:INDEX"),
    (("--layer", "nope"), 1, "unknown layer 'nope'"),
])
def test_explain_errors(capsys, chelsea_path, tmp_path, args, code, expected):
    assert expected in one_line_error(cli(capsys, "explain", "-i", chelsea_path, "-o", tmp_path, *args, *MODEL), code)


def test_video_frames_get_a_folder_and_a_frame_index(capsys, tmp_path, video_factory):
    video = Path(shutil.copy(video_factory("h264", ".mp4", frames=12, fps=10, size=(160, 120)), tmp_path / "clip.mp4"))
    report = _explain(capsys, video, tmp_path / "out", "--algorithms", "gradcam", "--every", "6")
    assert [(i["input"], i["frame"]) for i in report["items"]] == [("../clip.mp4", 0), ("../clip.mp4", 6)]
    assert (tmp_path / "out" / "clip_000006" / "summary.png").is_file()
    assert report["items"][1]["outputs"][0]["image"].startswith("clip_000006/gradcam_class")
