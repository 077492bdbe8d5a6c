"""``--weights PATH`` keeps what a state_dict carries besides tensors, and ``layers`` lists offline."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torchvision
from skimage import data
from torch import nn

from convscope.cli.main import main
from convscope.errors import WeightsError
from convscope.models import load_model
from convscope.models.preprocess import to_input
from convscope.models.weights import read_state_dict, strip_module_prefix


@pytest.fixture(scope="module")
def mnasnet(tmp_path_factory):
    """torchvision's mnasnet0_5 with weights unlike load_model's seeded init, and its saved state_dict.

    MNASNet checks the state_dict's ``_metadata`` version in ``_load_from_state_dict`` (version 1
    files are the old layout), so it fails when the metadata is dropped on the way.
    """
    torch.manual_seed(7)
    module = torchvision.models.mnasnet0_5(weights=None).eval()
    with torch.no_grad():  # BatchNorm off the identity, so the loaded statistics matter
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    d = tmp_path_factory.mktemp("mnasnet")
    plain, wrapped = d / "mnasnet.pth", d / "mnasnet_dp.pth"
    torch.save(module.state_dict(), plain)
    torch.save({"state_dict": nn.DataParallel(module).state_dict()}, wrapped)  # keys "module.*"
    return module, plain, wrapped


def _logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


def test_module_prefix_is_stripped_from_keys_and_metadata():
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    wrapped = nn.DataParallel(net).state_dict()
    out = strip_module_prefix(wrapped)
    assert list(out) == list(net.state_dict())
    assert out._metadata == net.state_dict()._metadata  # "module" -> "", "module.1" -> "1"


@pytest.mark.slow
@pytest.mark.parametrize("which", ["plain", "dataparallel"])
def test_mnasnet_state_dict_loads_with_its_metadata(mnasnet, which):
    original, plain, wrapped = mnasnet
    path = plain if which == "plain" else wrapped
    state = read_state_dict(path)
    assert state._metadata[""] == {"version": 2}  # the root's entry, from "module" when wrapped
    assert "layers.0" in state._metadata and not any(k.startswith("module") for k in state._metadata)

    bundle = load_model("mnasnet0_5", weights=str(path))
    x = to_input(data.chelsea(), bundle.preprocessing, "cpu")
    ours, ref = _logits(bundle.module, x), _logits(original, x)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    seeded = load_model("mnasnet0_5", weights="random")  # what we would have without the file
    assert (_logits(seeded.module, x) - ref).abs().max() > 1e-2


@pytest.mark.slow
def test_mnasnet_maps_from_weights_file_equal_torchs_own_load(mnasnet):
    from convscope.engine import Engine, ViewRequest

    original, plain, _ = mnasnet
    request = ViewRequest(keep_raw=True, algorithms=("gradcam", "guided_backprop"), panels=())
    frame = data.chelsea()
    with Engine(load_model("mnasnet0_5", weights=str(plain))) as engine:
        got = engine.run(frame, request)
    reference = load_model("mnasnet0_5", weights="random")
    reference.module.load_state_dict(original.state_dict())  # torch's own load, metadata intact
    with Engine(reference) as engine:
        want = engine.run(frame, request)
    for name in ("gradcam", "guided_backprop"):
        np.testing.assert_allclose(got.maps[name].raw, want.maps[name].raw, rtol=1e-5, atol=1e-6)


def test_weights_that_do_not_fit_give_one_line(tmp_path):
    path = tmp_path / "resnet18.pth"
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["fc.weight"] = torch.zeros(10, 512)
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"do not fit this architecture: size mismatch for fc\.weight") as info:
        load_model("resnet18", weights=str(path))
    assert "\n" not in str(info.value)


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    """No network and an empty torch cache: any weight download attempt fails."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*_args, **_kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow  # vgg16's 138M random parameters and a forward at 224
def test_layers_lists_a_named_model_without_downloading_weights(offline, capsys):
    code = main(["layers", "-m", "vgg16"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("vgg16: ") and "13 conv" in out and "3 linear" in out and "random" not in out
    assert "features.28" in out and "512x14x14" in out
    # the same offline set-up does stop a download that the user asks for
    code = main(["layers", "-m", "vgg16", "--weights", "default"])
    out, err = capsys.readouterr()
    assert code == 1 and err.startswith("error: could not download the weights for vgg16 (offline?)")
