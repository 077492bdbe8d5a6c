"""``convscope gradcam`` on real photos with the offline model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, one_line_error
from PIL import Image

MODEL = ("-m", "efficientnet_lite0")


def test_seed_flags_write_top1_and_top2(capsys, chelsea_path, tmp_path):
    out = cli(capsys, "gradcam", "-i", chelsea_path, "-o", tmp_path / "out.jpg",
              "-n", "efficientnet_lite0", "--convindex", "-1")
    assert out.code == 0, out.err
    first, second = tmp_path / "out_0.jpg", tmp_path / "out_1.jpg"
    assert first.is_file() and second.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_0.jpg", "out_1.jpg"]
    a, b = (np.asarray(Image.open(p)).astype(int) for p in (first, second))
    assert a.shape == b.shape and a.ndim == 3
    assert np.abs(a - b).mean() > 1.0  # two different classes, two different maps
    lines = out.out.splitlines()
    assert len(lines) == 2 and "cat" in lines[0] and "p=" in lines[0]


def test_into_existing_folder_keeps_input_name_and_class_flag(capsys, chelsea_path, tmp_path):
    out = cli(capsys, "gradcam", "-i", chelsea_path, "-o", tmp_path, "--class", "281", *MODEL)
    assert out.code == 0, out.err
    assert [p.name for p in tmp_path.iterdir()] == ["chelsea_0.png"]  # --class: one target
    assert "class 281 tabby" in out.out


@pytest.mark.slow
def test_folder_with_a_corrupt_file(capsys, photo_folder, tmp_path):
    dest = tmp_path / "maps"
    out = cli(capsys, "gradcam", "-i", photo_folder, "-o", dest, "--top-k", "1", "--batch-size", "8", *MODEL)
    assert out.code == 0, out.err
    written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    expected = sorted(
        str(p.relative_to(photo_folder).with_suffix("")) + "_0" + p.suffix
        for p in photo_folder.rglob("img*") if "broken" not in p.name
    )
    assert len(written) == 33 and written == sorted([*expected, "results.jsonl"])
    assert "warning: skipped 1 unreadable file(s):" in out.err
    assert "set_a/img99_broken.png" in out.err
    for path in list(dest.rglob("*_0.*"))[:3]:  # at the input's own size (issue 16)
        source = next(photo_folder.rglob(path.name.replace("_0.", ".")))
        assert Image.open(path).size == Image.open(source).size
    # one line per item on stdout, and results.jsonl with the predictions and the files written
    lines = [line for line in out.out.splitlines() if line.strip()]
    assert len(lines) == 32 and all(" -> " in line and "(p=" in line for line in lines)
    entries = [json.loads(line) for line in (dest / "results.jsonl").read_text().splitlines()]
    assert len(entries) == 32
    for entry in entries:
        assert (dest / entry["input"]).resolve().is_file() and (dest / entry["files"][0]).is_file()
        assert entry["predictions"][0]["probability"] >= entry["predictions"][1]["probability"]
    # progress shows in logs too: stderr is not a terminal under capsys
    assert "convscope: 33/33 images" in out.err and "img/s" in out.err and "1 skipped" in out.err
    again = cli(capsys, "gradcam", "-i", photo_folder, "-o", dest, "--top-k", "1", *MODEL)
    assert "results.jsonl exists: pass --overwrite" in one_line_error(again)

    strict = cli(capsys, "gradcam", "-i", photo_folder, "-o", tmp_path / "strict", "--strict", "--top-k", "1",
                 "-q", *MODEL)  # -q: no progress lines in the log before the error
    assert "img99_broken.png" in one_line_error(strict)


def test_video_every_n(capsys, tmp_path, video_factory):
    video = Path(shutil.copy(video_factory("h264", ".mp4", frames=12, fps=10, size=(160, 120)), tmp_path / "clip.mp4"))
    out = cli(capsys, "gradcam", "-i", video, "-o", tmp_path / "frames", "--every", "5", "--top-k", "1", *MODEL)
    assert out.code == 0, out.err
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["clip_000000_0.png", "clip_000005_0.png", "clip_000010_0.png", "results.jsonl"]
    frames = [json.loads(line)["frame"] for line in (tmp_path / "frames" / "results.jsonl").read_text().splitlines()]
    assert frames == [0, 5, 10]


@pytest.mark.parametrize("args,expected", [
    (("--layer", "blocks.6.0.conv_pw1"), "did you mean"),
    (("--conv-index", "999"), "out of range"),
    (("--class", "1000"), "out of range"),
    (("--class", "-3"), "out of range"),
])
def test_bad_layer_and_class_are_one_line_errors(capsys, chelsea_path, tmp_path, args, expected):
    line = one_line_error(cli(capsys, "gradcam", "-i", chelsea_path, "-o", tmp_path / "o.png", *args, *MODEL))
    assert expected in line


def test_input_and_output_errors(capsys, chelsea_path, tmp_path):
    assert "not found" in one_line_error(cli(capsys, "gradcam", "-i", tmp_path / "none.jpg", "-o", tmp_path / "o.png"))
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    assert "not an image" in one_line_error(cli(capsys, "gradcam", "-i", text, "-o", tmp_path / "o.png", *MODEL))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_line_error(cli(capsys, "gradcam", "-i", chelsea_path, "-o", blocker / "o.png", *MODEL))
    assert "cannot write" in line
    usage = cli(capsys, "gradcam", "-i", chelsea_path, "-o", tmp_path / "o.png", "--class", "3", "--top-k", "2")
    one_line_error(usage, code=2)


@pytest.mark.slow
def test_console_script(chelsea_path, tmp_path):
    exe = Path(sys.executable).with_name("convscope")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "convscope"]
    done = subprocess.run([*cmd, "gradcam", "-i", str(chelsea_path), "-o", str(tmp_path / "seed.png"),
                           "-n", "efficientnet_lite0", "--convindex", "-1"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "seed_0.png").is_file() and (tmp_path / "seed_1.png").is_file()
    bad = subprocess.run([*cmd, "gradcam", "-i", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.png")],
                         capture_output=True, text=True, timeout=240)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_max_pixels_refuses_from_the_header_and_is_per_run(capsys, chelsea_path, tmp_path):
    """chelsea is 451x300 = 135,300 pixels: over a 100,000 limit it is refused before decoding."""
    err = one_line_error(cli(capsys, "gradcam", "-i", chelsea_path, "-o", tmp_path / "a.png", "--max-pixels", "1e5"))
    assert "too large" in err and "--max-pixels" in err
    assert not list(tmp_path.iterdir())
    # the next run without the flag is back to the default limit
    done = cli(capsys, "gradcam", "-i", chelsea_path, "-o", tmp_path / "b.png", "--top-k", "1")
    assert done.code == 0 and (tmp_path / "b_0.png").is_file()
