"""Stand-ins for the engine and the source while those land (tests only; replaced by the real ones)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
from PIL import Image
from skimage import data

from convscope.engine.result import FCMap, MapOutput, Mosaic, Prediction, Result
from convscope.errors import LayerError
from convscope.models.layers import LayerInfo

LAYERS = [
    LayerInfo(0, "features.0", "conv", (8, 56, 56)),
    LayerInfo(1, "features.3", "conv", (16, 28, 28)),
    LayerInfo(2, "fc1", "linear", (32,)),
    LayerInfo(3, "classifier", "linear", (10,)),
]
LABELS = tuple(f"label {i}" for i in range(10))


class FakeEngine:
    def __init__(self, delay: float = 0.0) -> None:
        self.layers = LAYERS
        self.conv_layers = [la for la in LAYERS if la.kind == "conv"]
        self.linear_layers = [la for la in LAYERS if la.kind == "linear"]
        self.delay = delay
        self.requests = []

    def resolve(self, request):
        names = {la.name for la in LAYERS}
        for name in (request.conv_layer, request.fc_layer, request.cam_layer):
            if name is not None and name not in names:
                raise LayerError(f"unknown layer {name!r}")
        return request

    def run(self, image, request):
        self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        inp = np.asarray(Image.fromarray(image).resize((224, 224)))
        conv = next(la for la in LAYERS if la.name == (request.conv_layer or "features.3"))
        c = conv.shape[0]
        cols = int(np.ceil(np.sqrt(c)))
        rows = int(np.ceil(c / cols))
        tile = 32
        mosaic = np.zeros((rows * tile, cols * tile, 3), np.uint8)
        for k in range(c):
            r, q = divmod(k, cols)
            mosaic[r * tile:(r + 1) * tile, q * tile:(q + 1) * tile] = inp[::7, ::7][:tile, :tile] // (1 + k % 3)
        fc = next(la for la in LAYERS if la.name == (request.fc_layer or "classifier"))
        n = fc.shape[0]
        fcols = 8
        frows = int(np.ceil(n / fcols))
        values = np.linspace(-1, 1, n)
        fcimg = np.zeros((frows * 8, fcols * 8, 3), np.uint8)
        for i in range(n):
            r, q = divmod(i, fcols)
            fcimg[r * 8:(r + 1) * 8, q * 8:(q + 1) * 8] = int(127 + 127 * values[i])
        maps = {
            name: MapOutput(name, request.cam_target if "cam" in name else request.gb_target,
                            request.cam_layer, 255 - inp, overlay=inp // 2 if "cam" in name else None)
            for name in request.algorithms
        }
        preds = [Prediction(i, LABELS[i], p) for i, p in zip(range(5), (0.5, 0.2, 0.1, 0.05, 0.01), strict=True)]
        return Result(
            input=inp, predictions=preds,
            activations=Mosaic(conv.name, mosaic, rows, cols, tile, tile, c,
                               np.stack([np.arange(c) * -1.0, np.arange(c) + 1.0], 1).astype(np.float32)),
            channel=np.full((224, 224, 3), 10 * request.channel % 256, np.uint8), channel_index=request.channel,
            fc=FCMap(fc.name, fcimg, frows, fcols, 8, n, request.neuron,
                     None if request.neuron is None else float(values[request.neuron]), (-1.0, 1.0)),
            maps=maps, timings={"forward": 0.01, "total": 0.02},
        )


class FakeSource:
    """Frames from a real photo, shifted each time, produced by a thread at ``fps``."""

    def __init__(self, fps: float = 50.0) -> None:
        self.image = data.chelsea()
        self.info = SimpleNamespace(kind="demo", width=451, height=300, fps=fps, live=False, spec="demo")
        self.state = SimpleNamespace(status="playing", attempt=0, last_error=None)
        self.dropped = 0
        self._cond = threading.Condition()
        self._frame = None
        self._index = 0
        self._stop = threading.Event()
        self.fps = fps
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            img = np.roll(self.image, self._index * 7, axis=1)
            with self._cond:
                if self._frame is not None:
                    self.dropped += 1
                self._frame = SimpleNamespace(image=img, index=self._index, timestamp=self._index / self.fps)
                self._index += 1
                self._cond.notify_all()
            time.sleep(1 / self.fps)

    def latest(self, timeout=None):
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self):
        self._stop.set()
        self._thread.join(1)
