"""The `convscope` command's foundation: layers, models, version, and how errors reach the user."""

from __future__ import annotations

import json
import subprocess
import sys

from convscope import __version__
from convscope.cli.main import main


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_layers_json_resnet50(capsys):
    code, out, _ = run(["layers", "--model", "resnet50", "--weights", "random", "--json"], capsys)
    layers = json.loads(out)
    assert code == 0
    assert sum(la["kind"] == "conv" for la in layers) == 53
    first = {k: layers[0][k] for k in ("index", "name", "kind", "shape", "layout", "grid", "channels")}
    assert first == {"index": 0, "name": "conv1", "kind": "conv", "shape": [64, 112, 112], "layout": "map",
                     "grid": [112, 112], "channels": 64}
    assert [la for la in layers if la["kind"] == "conv"][-1]["name"] == "layer4.2.conv3"
    assert [la["name"] for la in layers if la["default"]] == ["layer4"]
    # the Bottleneck's ReLU runs three times: listed, not selectable
    assert next(la for la in layers if la["name"] == "layer4.2.relu")["calls"] == 3


def test_layers_seed_alias_and_table(capsys):
    code, out, _ = run(["layers", "-n", "vgg16", "--weights", "random"], capsys)
    assert code == 0
    assert "13 conv" in out and "3 linear" in out and "features.28" in out and "512x14x14" in out
    assert "default layer (feeds the head; Grad-CAM): features" in out
    assert "activation grid default (a middle layer with at most 256 channels): features.15" in out


def test_default_model_layers(capsys):
    code, out, _ = run(["layers", "--json"], capsys)
    layers = json.loads(out)
    assert code == 0 and sum(la["kind"] == "linear" for la in layers) == 1
    assert sum(la["kind"] == "conv" for la in layers) == 49


def test_unknown_model_is_one_line_exit_1(capsys):
    code, out, err = run(["layers", "-m", "resnet5"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("error: unknown model 'resnet5'") and err.count("\n") == 1


def test_usage_error_exit_2(capsys):
    code, _, err = run(["layers", "--bogus"], capsys)
    assert code == 2 and err.startswith("error: ") and "--bogus" in err


def test_models_lists_torchvision_registry(capsys):
    code, out, _ = run(["models", "resnet*"], capsys)
    assert code == 0 and "resnet50" in out and "vgg16" not in out


def test_console_script_version_and_debug_traceback():
    exe = [sys.executable, "-m", "convscope"]
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"convscope {__version__}"
    plain = subprocess.run([*exe, "layers", "-m", "nope_net"], capture_output=True, text=True)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = subprocess.run([*exe, "--debug", "layers", "-m", "nope_net"], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "error: unknown model" in debug.stderr
