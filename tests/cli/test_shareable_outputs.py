"""Issue 16: outputs at the input's geometry, annotated pictures, video out, no silent loss.

Small real photos (crops of skimage's chelsea) keep these cheap; the references are written out
here (OpenCV's bilinear resize, matplotlib's colormap) rather than taken from convscope.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import matplotlib
import numpy as np
import pytest
import torch
from cli_helpers import cli, one_line_error
from PIL import Image
from skimage import data

from convscope.engine import Engine, Target, ViewRequest
from convscope.models import load_model
from convscope.stills.outputs import unique_stems
from convscope.stills.present import Style, render_map

MODEL = ("-m", "efficientnet_lite0")


@pytest.fixture(scope="module")
def small_photo(tmp_path_factory) -> Path:
    """A 150x96 crop of chelsea (not square, not the model's size)."""
    path = tmp_path_factory.mktemp("small") / "cat.png"
    Image.fromarray(np.ascontiguousarray(data.chelsea()[60:252:2, 100:400:2])).save(path)
    return path


@pytest.fixture(scope="module")
def engine_and_result(small_photo):
    bundle = load_model("efficientnet_lite0")
    engine = Engine(bundle, optimize=False)
    frame = np.array(Image.open(small_photo).convert("RGB"))
    request = ViewRequest(cam_layer="bn2", algorithms=("gradcam", "saliency", "guided_backprop"),
                          cam_target=Target("class"), selection_target=Target("class"), keep_raw=True,
                          panels=("predictions",))
    try:
        yield bundle, frame, engine.run(frame, request)
    finally:
        engine.close()


def test_unique_stems():
    assert unique_stems(["a.jpg", "b.jpg", "b.png", "c/b.jpg"]) == {"b.jpg": "b.jpg", "b.png": "b.png"}
    assert unique_stems(["B.JPG", "b.png"]) == {"B.JPG": "B.JPG", "b.png": "b.png"}  # case-insensitive file systems
    clash = unique_stems(["b.jpg", "b.png", "b.jpg.png"])
    assert len(set(clash.values())) == 3 and clash["b.jpg"] == "b.jpg"
    assert unique_stems(["x.png", "y.png"]) == {}


def test_model_size_reproduces_the_engines_pictures(engine_and_result):
    bundle, frame, result = engine_and_result
    style = Style(size="model", colormap="jet")
    for name in ("gradcam", "saliency", "guided_backprop"):
        out = result.maps[name]
        drawn = render_map(out, frame, bundle.preprocessing, style, result.input)
        np.testing.assert_array_equal(drawn.image, out.image, err_msg=name)
        if out.overlay is not None:
            np.testing.assert_array_equal(drawn.overlay, out.overlay)


def test_input_size_cam_against_a_written_out_reference(engine_and_result):
    """Grad-CAM at the frame's size = the raw CAM resized bilinearly, min-max scaled, matplotlib's jet."""
    import cv2

    bundle, frame, result = engine_and_result
    cam = result.maps["gradcam"]
    drawn = render_map(cam, frame, bundle.preprocessing, Style())
    h, w = frame.shape[:2]
    assert drawn.image.shape == drawn.overlay.shape == (h, w, 3)
    up = cv2.resize(cam.raw.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    up = (up - up.min()) / (up.max() - up.min())
    ref = np.round(matplotlib.colormaps["jet"](np.round(up * 255).astype(int))[..., :3] * 255)
    assert np.abs(drawn.image.astype(int) - ref).max() <= 8  # a level of the LUT at most
    assert np.abs(drawn.image.astype(int) - ref).mean() < 1.0
    blend = (ref * 0.5 + frame * 0.5)
    assert np.abs(drawn.overlay.astype(float) - blend).mean() < 1.5
    # auto colormaps: a sequential one for saliency (a magnitude), a diverging one for signed gradients
    sal = render_map(result.maps["saliency"], frame, bundle.preprocessing, Style())
    assert sal.colormap == "inferno" and sal.image.shape == (h, w, 3)
    signed = render_map(result.maps["guided_backprop"], frame, bundle.preprocessing, Style(gradients="signed"))
    assert signed.colormap == "RdBu_r" and signed.span[0] == -signed.span[1]
    total = torch.nn.functional.interpolate(torch.from_numpy(result.maps["guided_backprop"].raw).sum(0)[None, None],
                                            size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
    near_zero = np.abs(total) < 1e-3 * np.abs(total).max()
    assert (signed.image[near_zero].astype(int) - [247, 247, 247]).__abs__().max() <= 12  # RdBu_r's white middle


def test_center_crop_draws_over_the_part_the_model_sees(engine_and_result):
    import dataclasses

    bundle, frame, result = engine_and_result
    prep = dataclasses.replace(bundle.preprocessing, policy="center_crop")
    drawn = render_map(result.maps["gradcam"], frame, prep, Style())
    assert drawn.overlay.shape == frame.shape
    # 150x96 -> shorter side 256 -> 400x256, centre 224x224 -> columns 88..312 of 400 -> 33..117 of 150
    np.testing.assert_array_equal(drawn.overlay[:, :30], frame[:, :30])
    np.testing.assert_array_equal(drawn.overlay[:, 120:], frame[:, 120:])
    assert (drawn.overlay[:, 40:110] != frame[:, 40:110]).any()


def test_cli_geometry_annotate_and_overwrite(capsys, small_photo, tmp_path):
    out = cli(capsys, "gradcam", "-i", small_photo, "-o", tmp_path / "o.png", "--top-k", "1", *MODEL)
    assert out.code == 0, out.err
    assert Image.open(tmp_path / "o_0.png").size == Image.open(small_photo).size == (150, 96)
    again = one_line_error(cli(capsys, "gradcam", "-i", small_photo, "-o", tmp_path / "o.png", "--top-k", "1"))
    assert "o_0.png exists: pass --overwrite" in again  # before the model even loads
    model = cli(capsys, "gradcam", "-i", small_photo, "-o", tmp_path / "o.png", "--top-k", "1", "--size", "model",
                "--overwrite", "--annotate", *MODEL)
    assert model.code == 0, model.err
    annotated = np.asarray(Image.open(tmp_path / "o_0.png"))
    h, w = annotated.shape[:2]
    assert h > 224 and w > 224  # caption band below, colour bar at the right
    band = annotated[224:]
    assert (band > 240).mean() > 0.8 and (band < 100).any()  # white band with dark text
    # the colour bar: 12 px wide at x = 230, rows 12..211 running from jet's top (255) to its bottom (0)
    index = np.linspace(255, 0, 200).round().astype(int)
    jet = np.round(matplotlib.colormaps["jet"](index)[:, :3] * 255)
    assert np.abs(annotated[12:212, 235].astype(int) - jet).max() <= 1


def test_folder_name_clash_keeps_extensions(capsys, small_photo, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    photo = Image.open(small_photo)
    photo.save(src / "b.png")
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(src / "b.jpg", quality=95)
    dest = tmp_path / "report"
    out = cli(capsys, "explain", "-i", src, "-o", dest, "--algorithms", "gradcam", *MODEL)
    assert out.code == 0, out.err
    assert "note: b.jpg and b.png share a name" in out.err
    assert sorted(p.name for p in dest.iterdir()) == ["b.jpg", "b.png", "report.json", "results.jsonl"]
    report = json.loads((dest / "report.json").read_text())
    assert [i["input"] for i in report["items"]] == ["../in/b.jpg", "../in/b.png"]
    cams = [np.asarray(Image.open(dest / i["outputs"][0]["image"])) for i in report["items"]]
    assert [i["outputs"][0]["image"].split("/")[0] for i in report["items"]] == ["b.jpg", "b.png"]
    assert cams[0].shape == cams[1].shape == (96, 150, 3)
    lines = [json.loads(line) for line in (dest / "results.jsonl").read_text().splitlines()]
    assert [line["files"] for line in lines] == [["b.jpg/summary.png"], ["b.png/summary.png"]]
    assert len([line for line in out.out.splitlines() if line.startswith("b.")]) == 2
    again = cli(capsys, "explain", "-i", src, "-o", dest, "--algorithms", "gradcam", *MODEL)
    assert "exists: pass --overwrite" in one_line_error(again)
    forced = cli(capsys, "explain", "-i", src, "-o", dest, "--algorithms", "gradcam", "--overwrite", "-q", *MODEL)
    assert forced.code == 0, forced.err


def _clip(path: Path, frames: int, fps: int) -> Path:
    """A short 98x64 clip of chelsea panning, written with PyAV."""
    photo = data.chelsea()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 98, 64, "yuv420p"
        for i in range(frames):
            crop = np.ascontiguousarray(photo[50:50 + 4 * 64:4, 20 + 6 * i:20 + 6 * i + 3 * 98:3])
            for packet in stream.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _probe(path: Path) -> tuple[int, Fraction, tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(video=0)]
        return len(frames), Fraction(stream.average_rate), (frames[0].width, frames[0].height)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=9, fps=12)


def test_video_in_mp4_out(capsys, clip, tmp_path):
    out = cli(capsys, "gradcam", "-i", clip, "-o", tmp_path / "cam.mp4", "--top-k", "1", *MODEL)
    assert out.code == 0, out.err
    assert not (tmp_path / "cam.mp4").exists() and (tmp_path / "cam_0.mp4").is_file()
    assert _probe(tmp_path / "cam_0.mp4") == (9, Fraction(12), (98, 64))
    assert "wrote" in out.err and "9 frames at 12 fps" in out.err
    again = one_line_error(cli(capsys, "gradcam", "-i", clip, "-o", tmp_path / "cam.mp4", "--top-k", "1"))
    assert "cam_0.mp4 exists: pass --overwrite" in again  # before the model loads


def test_video_in_webm_and_gif_out(capsys, clip, tmp_path):
    gb = cli(capsys, "guided-backprop", "-i", clip, "-o", tmp_path / "gb.webm", "--every", "2", *MODEL)
    assert gb.code == 0, gb.err
    assert _probe(tmp_path / "gb.webm") == (5, Fraction(6), (98, 64))
    gif = cli(capsys, "gradcam", "-i", clip, "-o", tmp_path / "cam.gif", "--class", "281", "--every", "3", *MODEL)
    assert gif.code == 0, gif.err
    n, rate, size = _probe(tmp_path / "cam_0.gif")
    assert n == 3 and size == (98, 64) and abs(float(rate) - 4.0) < 0.1  # GIF delays are in 1/100 s
