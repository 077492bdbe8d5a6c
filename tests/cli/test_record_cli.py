"""``convscope record`` (issue 14, item 4) on a real clip: one output frame per input frame at the
input's frame rate, MP4 (H.264) and GIF that decode (PyAV) with the expected count and size, and the
input panel of output frame i shows input frame i."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest

from convscope.cli.main import main

SERVER_TESTS = str(Path(__file__).resolve().parents[1] / "server")
N, FPS, SIZE = 12, 8, 64


@pytest.fixture(scope="module")
def model_spec():
    sys.path.insert(0, SERVER_TESTS)  # server_models:tiny_cnn, a seeded CNN loaded as a user's module
    yield ["-m", "server_models:tiny_cnn", "--input-size", str(SIZE)]
    sys.path.remove(SERVER_TESTS)


def decode(path: Path) -> tuple[list[np.ndarray], float, str]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return frames, float(s.average_rate or 0), s.codec_context.name


@pytest.fixture(scope="module")
def model_inputs(video_factory, model_spec) -> list[np.ndarray]:
    """What the model sees of each input frame, decoded in order by the plain source (the reference)."""
    from convscope.engine import Engine, ViewRequest
    from convscope.models import load_model
    from convscope.sources import open_source

    engine = Engine(load_model("server_models:tiny_cnn", input_size=SIZE, device="cpu"))
    try:
        with open_source(str(video_factory("h264", ".mp4", frames=N, fps=FPS)), realtime=False) as src:
            request = ViewRequest(algorithms=(), panels=("input",))
            return [engine.run(f.image, request).input.astype(float) for f in src]
    finally:
        engine.close()


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_record_renders_every_frame(video_factory, model_spec, model_inputs, tmp_path, capsys, suffix):
    clip = video_factory("h264", ".mp4", frames=N, fps=FPS)
    out = tmp_path / f"out{suffix}"
    assert main(["record", "-s", str(clip), "-o", str(out), "--panels", "input,gradcam,guided-backprop",
                 "--size", str(SIZE), *model_spec]) == 0
    captured = capsys.readouterr()
    assert f"{N}/{N} frames" in captured.err  # the progress bar
    frames, rate, codec = decode(out)
    assert codec == ("h264" if suffix == ".mp4" else "gif")
    assert len(frames) == N and rate == pytest.approx(FPS, rel=0.05)  # GIF delays are in 1/100 s
    assert frames[0].shape == (SIZE, 3 * SIZE + 2 * 4, 3)  # three panels, 4 px apart
    refs = model_inputs
    for i in (0, N // 2 - 1, N - 1):  # the input panel of output frame i is input frame i
        panel = frames[i][:, :SIZE].astype(float)
        diffs = [np.abs(panel - ref).mean() for ref in refs]
        assert int(np.argmin(diffs)) == i and diffs[i] < 6, (i, diffs)  # H.264 / GIF palette error


@pytest.mark.parametrize(("args", "message"), [
    (["--panels", "input,gradkam"], "unknown panel 'gradkam'"),
    (["-o", "out.avi"], ".mp4 or .gif"),
    (["-s", "demo"], "video file or a folder"),
])
def test_record_usage_errors(video_factory, tmp_path, capsys, args, message):
    clip = video_factory("h264", ".mp4", frames=N, fps=FPS)
    base = {"-s": str(clip), "-o": str(tmp_path / "o.mp4")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["record", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
