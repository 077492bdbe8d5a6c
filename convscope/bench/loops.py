"""The two loops being compared; each ``step(frame)`` processes one frame and times its stages.

Stage times are wall-clock seconds from :func:`time.perf_counter`. On a GPU the network loop's
``preprocess`` and ``forward`` are launch times and the wait lands in ``top1`` (``.item()``
synchronises), exactly as in a user's loop; the runner synchronises around every frame, so the
frame totals are exact on every device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from convscope.engine.request import ViewRequest
from convscope.engine.result import Result
from convscope.models import ModelBundle
from convscope.models.preprocess import to_input

#: Encodes a result as the dashboard would send it; returns anything (it is discarded).
Encoder = Callable[[Result], Any]

StageTimes = dict[str, float]


class NetworkLoop:
    """A user's plain classification loop: preprocess, ``model(x)`` in inference mode, top-1."""

    name = "network"

    def __init__(self, bundle: ModelBundle) -> None:
        self._module = bundle.module
        self._prep = bundle.preprocessing
        self._device = bundle.device
        self.last_top1: int | None = None

    def step(self, frame: np.ndarray) -> StageTimes:
        t0 = time.perf_counter()
        with torch.inference_mode():
            x = to_input(frame, self._prep, self._device)
            t1 = time.perf_counter()
            logits = self._module(x)
            t2 = time.perf_counter()
            self.last_top1 = int(logits.argmax(dim=1)[0].item())
        t3 = time.perf_counter()
        return {"preprocess": t1 - t0, "forward": t2 - t1, "top1": t3 - t2}


class DashboardLoop:
    """The live pipeline without the socket: ``Engine.run`` then encoding of every panel."""

    name = "dashboard"

    def __init__(self, engine: Any, request: ViewRequest, encode: Encoder) -> None:
        self._engine = engine
        self._request = request
        self._encode = encode
        self.last_result: Result | None = None

    def step(self, frame: np.ndarray) -> StageTimes:
        result = self._engine.run(frame, self._request)
        t0 = time.perf_counter()
        self._encode(result)
        encode = time.perf_counter() - t0
        self.last_result = result
        stages = {k: float(v) for k, v in result.timings.items()}
        stages["encode"] = encode
        return stages


def default_encoder() -> Encoder:
    """The live server's encoder: every panel to JPEG/PNG bytes, as the browser receives them."""
    from convscope.server.encode import encode_result

    return encode_result
