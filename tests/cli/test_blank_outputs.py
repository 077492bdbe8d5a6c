"""Blank maps in the still-image outputs: report.json flags, a stamped summary.png, warning lines.

The model is ``tests/helpers/blank_models.py``'s DeadNet (set weights): its ``conv2`` is followed
by a BatchNorm with gamma = 0, so Grad-CAM at ``conv2`` is all zero, as with timm's resnet18d.
"""

from __future__ import annotations

import json

import numpy as np
from cli_helpers import cli
from PIL import Image

from convscope import algorithms
from convscope.render import ALL_ZERO
from convscope.stills.sheet import TILE, Panel, contact_sheet

MODEL = ("-m", "helpers.blank_models:dead_net")
#: every map made of the gradient at conv2 (zero), and Ablation-CAM (zeroing a channel there changes nothing)
BLANK_CAMS = {"gradcam", "gradcam_pp", "guided_gradcam", "hirescam", "gradcam_elementwise", "xgradcam", "layercam",
              "eigengradcam", "ablationcam"}


def test_a_blank_panel_is_stamped_on_the_sheet():
    flat = np.full((TILE, TILE, 3), (0, 0, 128), np.uint8)
    plain = contact_sheet("t", [Panel(flat, ("Grad-CAM · conv2", "class 1"))])
    marked = contact_sheet("t", [Panel(flat, ("Grad-CAM · conv2", "class 1"), ALL_ZERO)])
    assert marked.shape[0] == plain.shape[0] + 16  # one more caption line
    tile = marked[-TILE - 8 : -8, 8 : 8 + TILE]
    assert (np.abs(tile.astype(int) - flat).sum(axis=2) > 60).mean() > 0.1  # a band over the tile
    assert (tile == flat).all(axis=2).mean() > 0.4  # ... over part of it: the map stays visible


def test_explain_marks_blank_maps_in_report_sheet_and_stderr(capsys, chelsea_path, tmp_path):
    out = cli(capsys, "explain", "-i", chelsea_path, "-o", tmp_path, *MODEL, "--layer", "conv2")
    assert out.code == 0, out.err
    report = json.loads((tmp_path / "report.json").read_text())
    (item,) = report["items"]
    for o in item["outputs"]:
        assert {"algorithm", "target", "layer", "image", "raw", "empty", "empty_reason"} <= set(o)
        blank = o["algorithm"] in BLANK_CAMS
        assert o["empty"] is blank, o["algorithm"]
        assert o["empty_reason"] == (ALL_ZERO if blank else None)
        if algorithms.get(o["algorithm"]).uses_layer:
            assert o["layer"] == "conv2"
    warnings = [line for line in out.err.splitlines() if line.startswith("warning: ")]
    assert sorted(warnings) == sorted(f"warning: {a} at conv2 for class {item['outputs'][0]['target']['class']}"
                                      f" is {ALL_ZERO}" for a in BLANK_CAMS)
    # the sheet: each blank tile carries the stamp, which the written map itself does not
    sheet = np.asarray(Image.open(tmp_path / "summary.png").convert("RGB")).astype(int)
    gradcam = np.asarray(Image.open(tmp_path / item["outputs"][0]["image"]).convert("RGB")).astype(int)
    assert item["outputs"][0]["algorithm"] == "gradcam"
    band = np.array([24, 24, 24])
    assert (np.abs(gradcam - band).sum(axis=2) < 10).mean() < 0.01
    assert (np.abs(sheet - band).sum(axis=2) < 10).sum() > 3 * 2000  # three stamped tiles


def test_gradcam_names_its_layer_once_and_warns_per_blank_map(capsys, chelsea_path, tmp_path):
    out = cli(capsys, "gradcam", "-i", chelsea_path, "-o", tmp_path / "cam.png", *MODEL, "--layer", "conv2")
    assert out.code == 0, out.err
    assert len(out.out.splitlines()) == 2  # one line per written map, as before
    err = out.err.splitlines()
    assert err.count("Grad-CAM layer: conv2") == 1
    assert len([line for line in err if line.startswith("warning: gradcam at conv2 for class ")]) == 2
    quiet = cli(capsys, "gradcam", "-i", chelsea_path, "-o", tmp_path / "q.png", *MODEL, "--layer", "conv1", "-q")
    assert quiet.code == 0 and "Grad-CAM layer" not in quiet.err and "warning" not in quiet.err
