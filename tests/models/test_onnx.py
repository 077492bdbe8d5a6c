"""ONNX files as today's ``torch.onnx.export`` writes them: they load, compute what onnxruntime
computes, and give the same Grad-CAM and guided backprop as the torch module they came from.

References are independent of convscope: onnxruntime runs the file itself, and the torch route
loads the original module's state_dict with ``-m NAME --weights FILE``.

The networks are torchvision's with seeded random weights. A fresh init leaves BatchNorm at the
identity, and MobileNetV2 / EfficientNet-B0 then shrink their activations to ~1e-9 / ~1e-14 by the
logits, which would make a 1e-4 tolerance meaningless. So each BatchNorm's ``running_var`` is set
to its input's mean square on one random batch (mean and shift stay 0): logits are O(1), the
exporter's BatchNorm folding is exercised with real scales, and since a pure per-channel scale
after a conv leaves Grad-CAM unchanged (the gradient scales by the inverse), the ONNX conv (BN
folded in) and the torch conv (before its BN) have the same Grad-CAM. With a trained model's BN
shift the two differ: an ONNX file has no pre-BatchNorm activation to show.

Exports are made once per session. The legacy (TorchScript) exporter covers all four networks, one
opset each of 17-20 (20 brings ``Gelu``, which cannot go below 20); the dynamo exporter (the
default) covers resnet18 at its default opset 18: it takes 8-18 CPU seconds per network here
(efficientnet_b0: 18), too slow to run for all four in every CI run. ``CONVSCOPE_ONNX_MATRIX=1``
runs every network with the legacy exporter at 17-20 and the dynamo one at 18 and 20 (24 cases,
tens of minutes on 2 cores).

Every file is also run on a batch of 2 (files are exported with a batch of 1): rows must equal
onnxruntime's answer for each image, or the batch must be refused with a one-line error (the
dynamo exporter's ConvNeXt hard-codes the batch in its flatten) -- never answered wrong.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from convscope.errors import ModelError
from convscope.models import load_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2torch")
ort = pytest.importorskip("onnxruntime")

MODELS = ("resnet18", "mobilenet_v2", "efficientnet_b0", "convnext_tiny")
if os.environ.get("CONVSCOPE_ONNX_MATRIX"):
    CASES = [(m, "legacy", o) for m in MODELS for o in (17, 18, 19, 20)] + [
        (m, "dynamo", o) for m in MODELS for o in (18, 20)
    ]
else:
    CASES = [
        ("resnet18", "legacy", 17),
        ("mobilenet_v2", "legacy", 18),
        ("efficientnet_b0", "legacy", 19),
        ("convnext_tiny", "legacy", 20),
        ("resnet18", "dynamo", 18),
    ]
IDS = [f"{m}-{e}-{o}" for m, e, o in CASES]
#: Exported at 160x160, not 224: half the compute, and the loader must take the size from the file.
SIZE = 160


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def _calibrate_batchnorm(module: nn.Module) -> None:
    """Set every BatchNorm's running_var to its input's per-channel mean square (see the module doc)."""

    def pre_hook(bn: nn.BatchNorm2d, inputs: tuple) -> None:
        bn.running_var.copy_(inputs[0].pow(2).mean(dim=(0, 2, 3)).clamp_min(1e-4))

    handles = [m.register_forward_pre_hook(pre_hook) for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        module(torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)))
    for h in handles:
        h.remove()


@pytest.fixture(scope="session")
def originals(tmp_path_factory) -> dict:
    """name -> (module, state_dict path); built once, shared by every exporter."""
    return {"dir": tmp_path_factory.mktemp("onnx_originals")}


def _original(originals: dict, name: str) -> tuple[nn.Module, Path]:
    if name not in originals:
        import torchvision

        torch.manual_seed(0)
        module = torchvision.models.get_model(name, weights=None).eval()
        _calibrate_batchnorm(module)
        path = originals["dir"] / f"{name}.pth"
        torch.save(module.state_dict(), path)
        originals[name] = (module, path)
    return originals[name]


@pytest.fixture(scope="session")
def exported(tmp_path_factory, originals):
    """(name, exporter, opset) -> path of the exported file; each is exported once per session."""
    cache: dict = {}
    out = tmp_path_factory.mktemp("onnx_exports")

    def get(name: str, exporter: str, opset: int) -> tuple[nn.Module, Path, Path]:
        key = (name, exporter, opset)
        module, state_path = _original(originals, name)
        if key not in cache:
            path = out / f"{name}_{exporter}_{opset}.onnx"
            x = torch.zeros(1, 3, SIZE, SIZE)
            with warnings.catch_warnings():  # the TorchScript exporter is deprecated; files from it abound
                warnings.simplefilter("ignore")
                if exporter == "dynamo":
                    torch.onnx.export(module, (x,), str(path), dynamo=True, opset_version=opset, verbose=False)
                else:
                    torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=opset)
            cache[key] = path
        return module, state_path, cache[key]

    return get


def _onnxruntime(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def _maps(bundle, frame: np.ndarray, optimize: bool) -> tuple[str, dict[str, np.ndarray]]:
    """Grad-CAM of the last conv layer (``--conv-index -1``) and guided backprop, raw.

    The last conv, not the default layer: an exported conv has its BatchNorm folded in and the
    graph's activations are not modules of the same names, so only convs pair up by name.
    """
    from convscope.engine import Engine, ViewRequest

    request = ViewRequest(keep_raw=True, algorithms=("gradcam", "guided_backprop"), panels=(), cam_layer="-1")
    with Engine(bundle, optimize=optimize) as engine:
        result = engine.run(frame, request)
    return result.maps["gradcam"].layer, {name: result.maps[name].raw for name in ("gradcam", "guided_backprop")}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "exporter", "opset"), CASES, ids=IDS)
def test_exported_file_loads_matches_onnxruntime_and_the_torch_maps(exported, name, exporter, opset):
    original, state_path, path = exported(name, exporter, opset)
    bundle = load_model(str(path))
    assert bundle.source == "onnx" and bundle.num_classes == 1000
    assert bundle.preprocessing.input_size == (SIZE, SIZE)  # from the file's input

    # a batch of 2 through a file exported with batch 1 (explain runs 8, the GPU engine one per map)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch_out = original(x).numpy()
        try:
            ours = bundle.module(x).numpy()
        except ModelError as exc:  # a graph that hard-codes the batch: refused, never answered wrong
            assert "only works on one image at a time" in str(exc) and "\n" not in str(exc)
            print(f"\n{name} {exporter} opset {opset}: a batch of 2 is refused ({exc})")
            ours = np.concatenate([bundle.module(x[i : i + 1]).numpy() for i in range(2)])
    reference = np.concatenate([_onnxruntime(path, x[i : i + 1]) for i in range(2)])
    scale = float(np.abs(reference).max())
    diff = float(np.abs(ours - reference).max())
    print(f"\n{name} {exporter} opset {opset}: max|onnx2torch - onnxruntime| = {diff:.2e} (max|logit| {scale:.2f})")
    assert scale > 0.1  # the calibration gives logits worth comparing
    assert diff <= 1e-4
    np.testing.assert_allclose(ours, torch_out, atol=1e-4)

    # The engine on the converted graph: conv modules are hookable and the maps match the torch
    # route's (the model as loaded: the reference takes no shortcut).
    torch_bundle = load_model(name, weights=str(state_path), input_size=SIZE)
    onnx_bundle = dataclasses.replace(bundle, preprocessing=torch_bundle.preprocessing)  # same input
    frame = data.chelsea()
    # the engine's default (its optimised copy of the model) once, the model as loaded elsewhere
    layer_a, a = _maps(onnx_bundle, frame, optimize=(name, exporter, opset) == CASES[0])
    layer_b, b = _maps(torch_bundle, frame, optimize=False)
    convs = [n for n, m in bundle.module.named_modules() if isinstance(m, nn.Conv2d)]
    assert layer_a == convs[-1] and layer_a.endswith("Conv"), layer_a
    print(f"{name} {exporter} opset {opset}: last conv {layer_a} (torch: {layer_b})")
    assert layer_a == layer_b.replace(".", "/") + "/Conv"  # torch's name ("." is "/" in a submodule name)
    # guided backprop equal to the torch route's (itself checked against captum elsewhere): the guided
    # ReLU rule reaches the converted model's ReLUs (onnx2torch makes them nn.ReLU / nn.ReLU6)
    for algorithm in ("gradcam", "guided_backprop"):
        r = _pearson(a[algorithm], b[algorithm])
        print(f"{name} {exporter} opset {opset}: {algorithm} r = {r:.6f}")
        assert a[algorithm].shape == b[algorithm].shape
        assert r >= 0.999, (algorithm, r)


# --- fast checks on small graphs -------------------------------------------------------------------


class _TwinConvs(nn.Module):
    """Two conv+BN pairs of one width: exported in eval mode, both folded biases are all zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = x.mean(dim=(2, 3), keepdim=True)  # dynamo: ReduceMean 18 (axes as an input)
        return self.fc(x.view(x.size(0), -1))  # dynamo: Reshape(allowzero=1) to [1, 8]


def _export_legacy(module: nn.Module, path: Path, opset: int = 17, size: int = 64) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.bias)
        torch.onnx.export(module.eval(), (torch.zeros(1, 3, size, size),), str(path), dynamo=False, opset_version=opset)
    return path


@pytest.fixture()
def twin_file(tmp_path) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    module = _TwinConvs().eval()
    return module, _export_legacy(module, tmp_path / "twin.onnx")


def test_aliased_initializers_are_the_keyerror_and_are_resolved(twin_file):
    """The cause of ``KeyError: 'onnx::Conv_NNN'``: a conv's bias is an Identity of another initializer."""
    from onnx2torch import convert

    module, path = twin_file
    model = onnx.load(str(path))
    initializers = {t.name for t in model.graph.initializer}
    aliases = [n for n in model.graph.node if n.op_type == "Identity" and n.input[0] in initializers]
    conv_inputs = {name for n in model.graph.node if n.op_type == "Conv" for name in n.input}
    assert aliases and any(n.output[0] in conv_inputs for n in aliases)
    with pytest.raises(KeyError):  # onnx2torch on the file as written: what users saw
        convert(model)

    bundle = load_model(str(path))
    assert bundle.preprocessing.input_size == (64, 64)  # from the file's input shape
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = bundle.module(x).numpy()
    np.testing.assert_allclose(ours, _onnxruntime(path, x), atol=1e-5)
    np.testing.assert_allclose(ours, module(x).detach().numpy(), atol=1e-5)


def test_layers_command_lists_the_converted_convs(twin_file, capsys):
    import json

    from convscope.cli.main import main

    _, path = twin_file
    assert main(["layers", "-m", str(path), "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)
    convs = [la for la in layers if la["kind"] == "conv"]
    assert [la["shape"] for la in convs] == [[8, 64, 64], [8, 64, 64]]
    assert [la["name"] for la in convs] == ["conv1/Conv", "conv2/Conv"]  # torch's module names, "/" for "."
    assert [la["shape"] for la in layers if la["kind"] == "linear"] == [[5]]


@pytest.mark.slow  # the dynamo exporter's first use in a process costs seconds (torch.export, onnxscript)
def test_dynamo_export_of_a_small_net_runs_batches(tmp_path):
    """The default exporter's habits on a small net: ReduceMean 18, Reshape(allowzero=1) to the
    example's batch of 1, ``node_Conv_N`` names. Loads, runs a batch of 3 as onnxruntime runs each
    image, and its convs are named after the conv modules they came from."""
    torch.manual_seed(0)
    module = _TwinConvs().eval()
    path = tmp_path / "twin_dynamo.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=True, verbose=False)
    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    assert {"ReduceMean", "Reshape"} <= ops

    bundle = load_model(str(path))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ours = bundle.module(x).numpy()
    reference = np.concatenate([_onnxruntime(path, x[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    convs = [n for n, m in bundle.module.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs == ["conv1/Conv", "conv2/Conv"]


def _graph_file(path: Path, nodes: list, opset: int, domains: tuple[tuple[str, int], ...] = ()) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domains]
    onnx.save(helper.make_model(graph, opset_imports=imports), str(path))
    return path


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_opset_20_graph_with_gelu_converts_at_20(tmp_path, approximate):
    """``Gelu`` exists from opset 20 on, so the graph cannot go down to 17: the converters added to
    onnx2torch's registry (Gelu 20, ReduceMean 18 with axes as an input, Reshape 19) take it."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    shape = numpy_helper.from_array(np.array([1, 4], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Gelu", ["c"], ["g"], approximate=approximate, name="gelu"),
        helper.make_node("ReduceMean", ["g", "axes"], ["m"], keepdims=1, name="pool"),
        helper.make_node("Reshape", ["m", "shape"], ["y"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=[w, axes, shape],
    )
    path = tmp_path / "gelu20.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)  # as dynamo writes
    onnx.save(model, str(path))

    bundle = load_model(str(path))
    assert any(isinstance(m, nn.GELU) and m.approximate == approximate for m in bundle.module.modules())
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours = bundle.module(x).numpy()
    reference = np.concatenate([_onnxruntime(path, x[i : i + 1]) for i in range(2)])  # batch follows too
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_graph_that_hard_codes_the_batch_refuses_batches(tmp_path):
    """The dynamo exporter's ConvNeXt flattens with ``Reshape(-1)`` + ``Gather`` of fixed indices: a
    batch of 2 would silently give every row the first image's answer. Refused in one line."""
    from onnx import TensorProto, helper, numpy_helper

    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    flat = numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat")
    index = numpy_helper.from_array(np.arange(3, dtype=np.int64).reshape(1, 3), "index")
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1),
        helper.make_node("Reshape", ["m", "flat"], ["f"]),
        helper.make_node("Gather", ["f", "index"], ["y"], axis=0),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=[axes, flat, index],
    )
    path = tmp_path / "batch1.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))

    import copy

    bundle = load_model(str(path))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    for module in (bundle.module, copy.deepcopy(bundle.module)):  # the engine runs a deep copy
        with torch.no_grad():
            np.testing.assert_allclose(module(x[:1]).numpy(), _onnxruntime(path, x[:1]), atol=1e-6)
            with pytest.raises(ModelError, match=r"only works on one image at a time \(its graph mixes") as info:
                module(x)
        assert "\n" not in str(info.value)


def test_custom_domain_operator_is_one_line_naming_it(tmp_path):
    from onnx import helper

    path = _graph_file(
        tmp_path / "custom.onnx", [helper.make_node("MyRelu", ["x"], ["y"], domain="com.example", name="act")],
        17, (("com.example", 1),),
    )
    with pytest.raises(ModelError) as info:
        load_model(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert "operator MyRelu of domain 'com.example'" in message and "custom operator" in message


def test_operator_onnx2torch_lacks_is_one_line_with_a_workaround(tmp_path):
    from onnx import TensorProto, helper

    grid = helper.make_node("Constant", [], ["grid"], value=helper.make_tensor(
        "grid", TensorProto.FLOAT, [1, 8, 8, 2], [0.0] * 128))
    sample = helper.make_node("GridSample", ["x", "grid"], ["y"], name="sample")
    path = _graph_file(tmp_path / "grid.onnx", [grid, sample], 17)
    with pytest.raises(ModelError) as info:
        load_model(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert "no converter for GridSample version 16 (domain ai.onnx, node sample)" in message
    assert "opset_version=17, dynamo=False" in message
