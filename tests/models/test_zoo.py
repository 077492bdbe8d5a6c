"""Model loading: the offline model's real predictions, every spec form, and the errors users see."""

from __future__ import annotations

import sys
import urllib.error

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from convscope.errors import ModelError, WeightsError
from convscope.models import load_model
from convscope.models.preprocess import to_input

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def lite():
    return load_model("efficientnet_lite0")


def top1(bundle, image: np.ndarray) -> str:
    with torch.inference_mode():
        logits = bundle.module(to_input(image, bundle.preprocessing, bundle.device))
    return bundle.labels[int(logits.argmax())]


def test_offline_model_recognises_real_photos(lite):
    assert top1(lite, data.chelsea()) == "Egyptian cat"
    assert top1(lite, data.coffee()) == "espresso"
    assert lite.num_classes == 1000 and lite.source == "builtin"
    assert not lite.module.training


def test_offline_model_center_crop_still_sees_a_cat(lite):
    import dataclasses

    cropped = dataclasses.replace(lite, preprocessing=dataclasses.replace(lite.preprocessing, policy="center_crop"))
    assert top1(cropped, data.chelsea()) in CAT_CLASSES


def test_random_weights_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = load_model("resnet18", weights="random")
    after = torch.rand(3)
    b = load_model("resnet18", weights="random")
    assert torch.equal(before, after)
    for (ka, va), (kb, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert a.name == "resnet18 (random weights)"
    assert a.labels[1] == "goldfish"  # ImageNet labels from torchvision's metadata, offline


def test_state_dict_file_loads_into_named_architecture(tmp_path):
    src = load_model("resnet18", weights="random").module
    with torch.no_grad():
        src.fc.bias.fill_(0.5)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": src.state_dict()}, path)
    loaded = load_model("resnet18", weights=str(path))
    assert torch.equal(loaded.module.fc.bias, torch.full((1000,), 0.5))


def test_state_dict_for_wrong_architecture_is_one_line(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(load_model("resnet18", weights="random").module.state_dict(), path)
    with pytest.raises(WeightsError, match="do not fit this architecture") as exc:
        load_model("vgg11", weights=str(path))
    assert "\n" not in str(exc.value)


def test_missing_weights_file():
    with pytest.raises(WeightsError, match="weights file not found: /nonexistent/w.pth"):
        load_model("resnet18", weights="/nonexistent/w.pth")


def test_unknown_model_suggests_close_matches():
    with pytest.raises(ModelError) as exc:
        load_model("resnet5")
    msg = str(exc.value)
    assert "unknown model 'resnet5'" in msg and "resnet50" in msg and "\n" not in msg


def test_download_failure_names_the_way_out(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as exc:
        load_model("resnet50")
    assert str(exc.value) == (
        "could not download the weights for resnet50 (offline?): use --weights random or --weights PATH"
    )


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()


def test_torchscript_file_loads(tmp_path):
    model = _tiny()
    path = tmp_path / "tiny.pt"
    torch.jit.script(model).save(str(path))
    bundle = load_model(str(path))
    x = torch.randn(1, 3, 224, 224)
    assert bundle.scripted and bundle.source == "torchscript"
    assert torch.allclose(bundle.module(x), model(x))
    assert bundle.labels == ("class 0", "class 1", "class 2")


def test_pickled_module_needs_trust(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(_tiny(), path)
    with pytest.raises(ModelError, match="--trust-pickle"):
        load_model(str(path))
    bundle = load_model(str(path), trust_pickle=True)
    assert isinstance(bundle.module[0], nn.Conv2d)


def test_onnx_model_converts(tmp_path):
    pytest.importorskip("onnx2torch")
    model = _tiny()
    path = tmp_path / "tiny.onnx"
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(model, torch.zeros(1, 3, 224, 224), str(path), dynamo=False)
    bundle = load_model(str(path))
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(bundle.module(x), model(x), atol=1e-5)


def test_callable_with_label_and_preprocessing_overrides(tmp_path, monkeypatch):
    (tmp_path / "mynet.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))\n"
    )
    (tmp_path / "labels.txt").write_text("cat\ndog\n\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bundle = load_model(
        "mynet:build", labels=tmp_path / "labels.txt", input_size=96, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
    )
    assert bundle.labels == ("cat", "dog")
    assert bundle.preprocessing.input_size == (96, 96)
    assert bundle.preprocessing.std == (0.25, 0.25, 0.25)
    sys.modules.pop("mynet", None)


def test_callable_that_does_not_import():
    with pytest.raises(ModelError, match="cannot import 'no_such_pkg_xyz.mod' for model .*No module named"):
        load_model("no_such_pkg_xyz.mod:build")
