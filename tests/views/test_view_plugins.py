"""Views and algorithms are plugins: a file in the folder is all it takes, and forgetting to
register fails here.

The toy view below lives in a temporary module (written to disk and imported, as a user's plugin
would be). With no other edit it must appear in ``Result.panels``, in the page's ``hello``, in
the encoded frame (header and blob) and in ``explain``'s output, and what it shows must be the
layer's real output (checked against a forward hook on the user's module).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from convscope import algorithms, views
from convscope.cli.main import main
from convscope.engine import Engine, ViewRequest
from convscope.models import load_model
from convscope.server.encode import encode_result, unpack_message
from convscope.server.protocol import ModelSpace, hello_message

TOY = '''
"""A toy view: the channel mean of the CAM layer's output, as a grey image and as raw numbers."""
from dataclasses import dataclass

import numpy as np

from convscope import render
from convscope.views.base import PNG, Blob, View
from convscope.views.registry import register
from convscope.vocabulary import Needs


@dataclass
class MeanMap:
    image: np.ndarray
    raw: np.ndarray
    view: str = "toy_mean"
    empty: str | None = None

    def blobs(self):
        return (Blob(self.view, self.image, PNG),)

    def meta(self):
        return {"shape": list(self.raw.shape), "max": float(self.raw.max())}

    def meta_key(self):
        return (self.view,)

    def images(self):
        return {"": self.image}


@register
class ToyMean(View):
    name = "toy_mean"
    title = "Toy mean"
    kind = "image"

    def needs(self, request):
        return Needs(activations=(request.cam_layer,))

    def render(self, frame, slot):
        mean = frame.activation(frame.request.cam_layer).float().mean(dim=1)
        slot.add("raw", mean)
        slot.add("image", render.colorize(render.normalize(mean, (-2, -1)), "gray"))

    def unpack(self, host, row, frame):
        return MeanMap(host["image"][row], host["raw"][row])
'''


@pytest.fixture
def toy_view(tmp_path):
    path = tmp_path / "toy_view_plugin.py"
    path.write_text(TOY)
    spec = importlib.util.spec_from_file_location("toy_view_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    views.unregister("toy_mean")


@pytest.fixture(scope="module")
def lite0():
    return load_model("efficientnet_lite0")


@pytest.fixture(scope="module")
def chelsea_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "chelsea.png"
    Image.fromarray(data.chelsea()[::2, ::2]).save(path)
    return path


def test_a_toy_view_appears_everywhere_with_no_other_edit(toy_view, lite0, chelsea_path, tmp_path, capsys):
    frame = np.asarray(Image.open(chelsea_path).convert("RGB"))
    with Engine(lite0) as engine:
        layer = engine.default_layer
        result = engine.run(frame, ViewRequest(algorithms=("gradcam",), keep_raw=True))
        # the layer's output on the same input, from the user's own module (the engine runs a
        # prepared copy of it)
        seen = {}
        module = dict(lite0.module.named_modules())[layer]
        hook = module.register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach().clone()))
        try:
            with torch.no_grad():
                lite0.module(torch.from_numpy(result.input_tensor))
        finally:
            hook.remove()
        assert "toy_mean" in result.panels  # a default view: on without being listed
        panel = result.panels["toy_mean"]
        expected = seen["out"].float().mean(dim=1)[0].numpy()
        np.testing.assert_allclose(panel.raw, expected, rtol=1e-4, atol=1e-5)
        assert panel.image.shape == (*expected.shape, 3)

        # the page learns of it from hello, and the frame carries its header entry and its blob
        space = ModelSpace.from_layers(engine.layers, engine.num_classes, algorithms.names())
        hello = hello_message("lite0", engine.layers, engine.labels, [], {"kind": "file"}, space)
        assert {"name": "toy_mean", "title": "Toy mean", "kind": "image"} in hello["views"]
        encoded = encode_result(result, seq=3)
        assert encoded.meta["toy_mean"]["shape"] == list(expected.shape)
        blobs = {name: payload for _, name, payload in unpack_message(encoded.packed())}
        assert "toy_mean" in blobs and blobs["toy_mean"][:8] == b"\x89PNG\r\n\x1a\n"
        assert any(p["name"] == "toy_mean" for p in encoded.meta["panels"])
        # ...and a request that lists its panels without it does not compute it
        assert "toy_mean" not in engine.run(frame, ViewRequest(algorithms=(), panels=("input",))).panels

    # explain writes it, lists it in report.json and puts it on the summary sheet
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["explain", "-i", str(chelsea_path), "-o", str(out), "-m", "efficientnet_lite0",
                 "--algorithms", "gradcam"]) == 0
    report = json.loads((out / "report.json").read_text())
    (entry,) = report["items"]
    assert entry["views"] == [{"view": "toy_mean", "image": "toy_mean.png", "empty": False, "empty_reason": None}]
    written = np.asarray(Image.open(out / "toy_mean.png"))
    np.testing.assert_array_equal(written, panel.image)


def _plugin_modules(package) -> set[str]:
    folder = Path(package.__file__).parent
    return {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")} - set(package.INFRASTRUCTURE)


def test_every_file_in_the_plugin_folders_registers_a_plugin():
    """A plugin file whose ``@register`` was forgotten (or that defines nothing) fails here."""
    registered = {type(a).__module__.rsplit(".", 1)[-1] for a in algorithms.all()}
    assert _plugin_modules(algorithms) <= registered, _plugin_modules(algorithms) - registered
    registered = {type(v).__module__.rsplit(".", 1)[-1] for v in views.all()}
    assert _plugin_modules(views) <= registered, _plugin_modules(views) - registered
    assert {m.__name__.rsplit(".", 1)[-1] for m in algorithms.MODULES} == _plugin_modules(algorithms)


@pytest.mark.parametrize("first", ["convscope.vocabulary", "convscope.algorithms", "convscope.views",
                                   "convscope.engine", "convscope.server.encode", "convscope.algorithms.gradcam"])
def test_no_import_cycle_whichever_module_comes_first(first):
    """Each layer imports cleanly on its own, in a fresh interpreter, with no lazy-import tricks."""
    code = textwrap.dedent(f"""
        import importlib, sys
        importlib.import_module({first!r})
        import convscope.engine
        assert not hasattr(convscope.engine, "__getattr__"), "lazy module attribute in convscope.engine"
        low = sys.modules.get("convscope.vocabulary")
        assert low is not None
        assert not [m for m in ("convscope.engine", "convscope.algorithms", "convscope.views")
                    if m in vars(low)], "the vocabulary imports an upper layer"
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_vocabulary_imports_nothing_from_convscope():
    source = Path(sys.modules["convscope.vocabulary"].__file__).read_text()
    assert "import convscope" not in source and "from convscope" not in source
