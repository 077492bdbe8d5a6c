"""Trust, live (issue 17 item 4): the dashboard's sanity-check toggle and per-frame deletion scores.

Page -> server (JSON text, checked as strictly as :mod:`convscope.server.commands`)::

    {"type": "sanity", "on": true|false, "top_layers": N}   the toggle, shared by every viewer; N
                                                             (optional, 1..layers) conv/linear layers
                                                             from the top are re-initialised
    {"type": "deletion", "steps": N}                         each selected map's deletion AUC for the
                                                             current frame (steps optional, 2..50)

Server -> page: ``sanity`` (``on``, ``top_layers``, ``layers``: sent on connect and to every
viewer when the toggle changes); while on, ``trust`` for the newest frame: per selected map the
map of the randomised copy (``image``, a JPEG data URL) and ``rho``, the Spearman rank correlation
of the real and the randomised importance maps (:func:`convscope.evaluate.metrics.spearman`);
``deletion`` (``scores``, ``class``, ``steps``, ``frame``) to the viewer who asked.

The work runs in its own thread (:class:`TrustWorker`), on private copies of the model
(:class:`convscope.evaluate.live.LiveTrust`, plus one engine on an untouched copy for the real
maps with their raw values), from the newest frame the dashboard drew (its ``input`` panel: the
model input). The frame loop is never touched: with the toggle off and no deletion asked, the
thread does not exist or sleeps, and nothing is computed.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from convscope.errors import RequestError
from convscope.server.commands import _whole
from convscope.server.protocol import _check_keys, _show

log = logging.getLogger(__name__)

KINDS = ("sanity", "deletion")
DEFAULT_STEPS = 10
MAX_STEPS = 50


@dataclass(frozen=True)
class SanityMessage:
    on: bool
    top_layers: int | None


@dataclass(frozen=True)
class DeletionMessage:
    steps: int


def parse(msg: dict, layers: int) -> SanityMessage | DeletionMessage:
    """Check one decoded ``sanity`` or ``deletion`` message (``layers``: the model's conv/linear count).

    Raises:
        RequestError: one line; nothing has changed.
    """
    kind = msg.get("type")
    if kind == "sanity":
        _check_keys(msg, ("on", "top_layers"), "sanity")
        on = msg.get("on")
        if not isinstance(on, bool):
            raise RequestError(f"sanity needs on: true or false, got {_show(on)}")
        top = msg.get("top_layers")
        if "top_layers" in msg:
            top = _whole(top, "top_layers")
            if layers < 1:
                raise RequestError("this model has no conv or linear layer to randomise")
            if not 1 <= top <= layers:
                raise RequestError(f"top_layers must be from 1 to {layers} (the model's conv and linear layers), got {top}")
        return SanityMessage(on, top)
    if kind == "deletion":
        _check_keys(msg, ("steps",), "deletion")
        steps = _whole(msg.get("steps", DEFAULT_STEPS), "steps")
        if not 2 <= steps <= MAX_STEPS:
            raise RequestError(f"steps must be from 2 to {MAX_STEPS}, got {steps}")
        return DeletionMessage(steps)
    raise RequestError(f"unknown message type {str(kind)[:40]!r}")


def data_url(image: np.ndarray, quality: int = 85) -> str:
    """An HxWx3 uint8 picture as a JPEG ``data:`` URL (what an ``<img>`` shows as it is)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def rank_correlations(real: Any, rand: Any) -> dict[str, float | None]:
    """Spearman rho between each map of two results (``keep_raw``), as importance maps at the input size."""
    from convscope.evaluate import metrics
    from convscope.evaluate.evaluator import importance

    h, w = real.input_tensor.shape[2:]
    out: dict[str, float | None] = {}
    for name, m in real.maps.items():
        other = rand.maps.get(name)
        if m.raw is None or other is None or other.raw is None:
            continue
        rho = float(metrics.spearman(importance(m.raw, (h, w))[None], importance(other.raw, (h, w))[None])[0])
        out[name] = round(rho, 4) if np.isfinite(rho) else None  # a constant map has no ranks
    return out


def handle(worker: TrustWorker, msg: dict, viewer: Any, hub: Any) -> None:
    """Act on one decoded ``sanity`` / ``deletion`` message from ``viewer`` (on the event loop).

    Raises:
        RequestError: the message does not fit (the caller replies with a one-line error).
    """
    import asyncio
    import json

    command = parse(msg, worker.layers)
    if isinstance(command, SanityMessage):
        worker.apply(command)
        hub.broadcast("sanity", worker.describe())
        return
    loop = asyncio.get_running_loop()

    def done(reply: dict | None, error: str | None) -> None:  # from the worker thread
        if reply is not None:
            loop.call_soon_threadsafe(viewer.push_control, "deletion", json.dumps({"type": "deletion", **reply}))
        else:
            text = json.dumps({"type": "error", "message": error or "deletion failed", "about": "deletion"})
            loop.call_soon_threadsafe(viewer.push_error, text)

    worker.ask_deletion(command.steps, done)


def connect(worker: TrustWorker, loop: Any, hub: Any) -> None:
    """Route the worker's messages to every viewer through the event loop (from any thread)."""
    worker.publish = lambda kind, msg: loop.call_soon_threadsafe(hub.broadcast, kind, msg)


class TrustWorker:
    """Computes the sanity panels and deletion scores beside a :class:`~convscope.server.pipeline.Pipeline`.

    Args:
        pipeline: has ``engine.bundle`` (the model), ``state`` (the shared selection) and
            ``last_result`` (the newest :class:`~convscope.views.Result`, with its ``input`` panel).
        seed: the re-initialisation seed (the same randomised copy on every run).
    """

    def __init__(self, pipeline: Any, seed: int = 0) -> None:
        self.pipeline = pipeline
        self.seed = seed
        self.on = False
        self.top_layers = 1
        self.layers = 0
        self.publish: Callable[[str, dict], None] = lambda kind, msg: None  # to every viewer
        self._cond = threading.Condition()
        self._asks: list[tuple[int, Callable[[dict | None, str | None], None]]] = []
        self._stop = False
        self._thread: threading.Thread | None = None
        self._real: Any = None  # an Engine on an untouched copy of the model
        self._trust: Any = None  # LiveTrust (randomised copy + the real copy for scores)
        self._done: tuple[Any, ...] | None = None  # what the last trust message was computed for
        module = getattr(getattr(getattr(pipeline, "engine", None), "bundle", None), "module", None)
        if module is not None and hasattr(module, "named_modules"):  # test doubles have no model
            from convscope.evaluate.randomize import parametrised_layers

            self.layers = len(parametrised_layers(module))

    def describe(self) -> dict:
        return {"on": self.on, "top_layers": self.top_layers, "layers": self.layers}

    def apply(self, msg: SanityMessage) -> None:
        with self._cond:
            self.on = msg.on
            if msg.top_layers is not None:
                self.top_layers = msg.top_layers
            self._done = None
            self._start()
            self._cond.notify_all()

    def ask_deletion(self, steps: int, done: Callable[[dict | None, str | None], None]) -> None:
        """``done(reply, None)`` or ``done(None, one-line error)``, later, from the worker thread."""
        with self._cond:
            self._asks.append((steps, done))
            self._start()
            self._cond.notify_all()

    def stop(self, timeout: float = 0.5) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return  # mid-frame: a daemon thread, ended with the process
        for engine in (self._real, self._trust):
            if engine is not None:
                try:
                    engine.close()
                except Exception:  # noqa: BLE001 - closing at shutdown must not raise
                    log.debug("closing a trust engine failed", exc_info=True)

    # -- the thread ---------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None and not self._stop:
            self._thread = threading.Thread(target=self._loop, name="convscope-trust", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._asks and not (self.on and self._stale()):
                    self._cond.wait(0.05 if self.on else None)  # on: a new frame is noticed within 50 ms
                if self._stop:
                    return
                asks, self._asks = self._asks, []
                on, top = self.on, self.top_layers
            try:
                self._work(on, top, asks)
            except Exception as exc:  # the dashboard must keep running; say it once, in one line
                log.warning("trust failed", exc_info=True)
                line = f"sanity failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
                for _, done in asks:
                    done(None, line.replace("sanity", "deletion", 1))
                if on:
                    self.publish("trust", {"error": line, "maps": {}})
                    with self._cond:
                        self._done = self._key(top)
                time.sleep(0.2)

    def _key(self, top: int) -> tuple[Any, ...]:
        return (id(self.pipeline.last_result), self.pipeline.state, top)

    def _stale(self) -> bool:
        return self.pipeline.last_result is not None and self._done != self._key(self.top_layers)

    def _engines(self, top: int) -> tuple[Any, Any]:
        from convscope.engine import Engine
        from convscope.evaluate.live import LiveTrust
        from convscope.evaluate.randomize import clean_copy

        bundle = self.pipeline.engine.bundle
        if self._real is None:
            self._real = Engine(dataclasses.replace(bundle, module=clean_copy(bundle.module)))
        if self._trust is None or self._trust.top_layers != top:
            if self._trust is not None:
                self._trust.close()
            # its own untouched copy: deletion runs the model directly, never under an engine's hooks
            self._trust = LiveTrust(dataclasses.replace(bundle, module=clean_copy(bundle.module)), top, self.seed)
        return self._real, self._trust

    def _work(self, on: bool, top: int, asks: list) -> None:
        key = self._key(top)
        result, state = self.pipeline.last_result, self.pipeline.state
        if result is None or "input" not in result.panels:
            for _, done in asks:
                done(None, "deletion: no frame yet")
            return
        computed = getattr(self.pipeline, "computed", None)
        where = computed[-1] if computed else None  # the input frame's index (files and folders)
        image = result.panels["input"].image  # the model input: running on it gives the frame's own tensor
        if not state.algorithms:
            for _, done in asks:
                done(None, "deletion: no map is selected")
            if on:
                self.publish("trust", {"maps": {}, "top_layers": top, "layers": self.layers, "class": None})
            with self._cond:
                self._done = key
            return
        real_engine, trust = self._engines(top)
        t0 = time.perf_counter()
        request = state.to_request(keep_raw=True, panels=("input", "predictions"))
        real = real_engine.run(image, request)
        cls = real.predictions[0].index if real.predictions else None
        if on:
            rand = trust.randomized(image, request, real)
            rho = rank_correlations(real, rand)
            maps = {name: {"image": data_url(m.picture()), "rho": rho.get(name), "empty": m.empty}
                    for name, m in rand.maps.items()}
            self.publish("trust", {"maps": maps, "top_layers": top, "layers": self.layers, "class": cls,
                                   "frame": where, "ms": round(1000 * (time.perf_counter() - t0), 1)})
        for steps in sorted({s for s, _ in asks}):
            scores = {name: round(v, 5) for name, v in trust.deletion_scores(real, steps).items()}
            reply = {"scores": scores, "class": cls, "steps": steps, "frame": where}
            for s, done in asks:
                if s == steps:
                    done(reply, None)
        if on:
            with self._cond:
                self._done = key
