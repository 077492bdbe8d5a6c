"""The two loops being compared; each ``step(frame)`` processes one frame and times its stages.

Stage times are wall-clock seconds from :func:`time.perf_counter`. On a GPU the network loop's
``preprocess`` and ``forward`` are launch times and the wait lands in ``top1`` (``.item()``
synchronises), exactly as in a user's loop; the runner synchronises around every frame, so the
frame totals are exact on every device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from convscope.models import ModelBundle
from convscope.models.preprocess import to_input
from convscope.request import ViewRequest
from convscope.views import Result

if TYPE_CHECKING:
    from convscope.engine.seams import FrameEngine

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

    def step(self, frame: np.ndarray) -> StageTimes:
        t0 = time.perf_counter()
        with torch.inference_mode():
            x = to_input(frame, self._prep, self._device)
            t1 = time.perf_counter()
            logits = self._module(x)
            t2 = time.perf_counter()
            int(logits.argmax(dim=1)[0].item())  # the top-1 on the host, as the dashboard needs it
        t3 = time.perf_counter()
        return {"preprocess": t1 - t0, "forward": t2 - t1, "top1": t3 - t2}


class DashboardLoop:
    """The live pipeline without the socket: ``Engine.run`` then encoding of every panel.

    With ``encode_thread`` (what the live server does) the encoding of frame N runs on one
    worker thread while the engine computes frame N+1; a frame then costs the engine's time plus
    any wait for the previous frame's encoding (``encode_wait``), so in steady state the rate is
    that of the slower of the two, as in the server, where a result the encoder has not taken
    yet is replaced by the next. Each frame's ``encode`` is the worker's time for that frame.
    """

    name = "dashboard"

    def __init__(self, engine: FrameEngine, request: ViewRequest, encode: Encoder, encode_thread: bool = False) -> None:
        self._engine = engine
        self._request = request
        self._encode = encode
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="convscope-bench-encode") if encode_thread else None
        self._pending: tuple[Future[float], StageTimes] | None = None

    def _timed_encode(self, result: Result) -> float:
        t0 = time.perf_counter()
        self._encode(result)
        return time.perf_counter() - t0

    def step(self, frame: np.ndarray) -> StageTimes:
        result = self._engine.run(frame, self._request)
        stages = {k: float(v) for k, v in result.timings.items()}
        if self._pool is None:
            stages["encode"] = self._timed_encode(result)
            return stages
        t0 = time.perf_counter()
        self.finish()
        stages["encode_wait"] = time.perf_counter() - t0
        self._pending = (self._pool.submit(self._timed_encode, result), stages)
        return stages

    def finish(self) -> None:
        """Wait for a pending encoding and file its time under its own frame's ``encode``.

        The rounds call this between turns, untimed, so pending work never lands on the other loop.
        """
        if self._pending is not None:
            future, stages = self._pending
            self._pending = None
            stages["encode"] = future.result()

    def close(self) -> None:
        self.finish()
        if self._pool is not None:
            self._pool.shutdown()


def default_encoder() -> Encoder:
    """The live server's encoder: every panel to JPEG/PNG bytes, as the browser receives them."""
    from convscope.server.encode import encode_result

    return encode_result
