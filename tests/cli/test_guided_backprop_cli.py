"""``convscope guided-backprop``: class, conv channel and FC neuron targets."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import cli, one_line_error
from PIL import Image

MODEL = ("-m", "efficientnet_lite0")


def _image(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


@pytest.mark.slow
def test_targets_write_one_image_each(capsys, chelsea_path, tmp_path):
    runs = {
        "top1": (),
        "class": ("--class", "1"),
        "channel": ("--layer", "conv_head", "--channel", "7"),
        "neuron": ("--neuron", "classifier:285"),
    }
    images = {}
    for name, args in runs.items():
        out = cli(capsys, "guided-backprop", "-i", chelsea_path, "-o", tmp_path / f"{name}.png", *args, *MODEL)
        assert out.code == 0, out.err
        images[name] = _image(tmp_path / f"{name}.png")
        assert images[name].shape == (300, 451, 3) and images[name].std() > 1  # chelsea's own size
    assert "conv_head channel 7" in out.out or "classifier neuron 285" in out.out
    assert np.abs(images["top1"] - images["class"]).mean() > 0.5  # a different class, a different map
    assert np.abs(images["channel"] - images["top1"]).mean() > 0.5


@pytest.mark.parametrize("args,code,expected", [
    (("--layer", "conv_head", "--channel", "5000"), 1, "out of range"),
    (("--layer", "conv_head"), 2, "--channel"),
    (("--class", "3", "--neuron", "classifier:3"), 2, "choose one target"),
    (("--neuron", "conv_head:3"), 1, "conv_head (conv, 1280x7x7) has no feature vector to take neurons of"),
    (("--neuron", "clasifier:3"), 1, "unknown linear layer 'clasifier' (did you mean: classifier"),
])
def test_errors(capsys, chelsea_path, tmp_path, args, code, expected):
    line = one_line_error(cli(capsys, "guided-backprop", "-i", chelsea_path, "-o", tmp_path / "g.png", *args, *MODEL), code)
    assert expected in line
