"""The unit explorer of one dashboard: live top patches fed by the ``units`` view, the page's queries,
and feature visualisations computed in the background at low priority.

* :class:`UnitsSession` holds the session's :class:`~convscope.units.live.LiveUnits` (or a
  ``convscope units`` OUTDIR loaded with ``--units``), follows the source so every observed frame
  carries its input frame index (what a click on a patch seeks to), and answers the page's
  ``units`` queries (:meth:`UnitsSession.query`).
* :class:`FeatVisWorker` computes one feature visualisation at a time in its own thread: one
  torch thread, on its own copy of the model (the engine's hooks and the network-FPS probe never
  see it), and after every optimisation step it sleeps so that it uses at most ``share`` of the
  wall clock: the frame loop keeps the device most of the time. Finished images are cached per
  (model, layer, channel) by :class:`~convscope.units.featvis.FeatureVis`.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from convscope.models.bundle import ModelBundle
from convscope.models.layers import LayerInfo
from convscope.units.featvis import Cancelled, FeatureVis
from convscope.units.live import LiveUnits

log = logging.getLogger(__name__)

#: Layers whose trackers a session keeps at once (each holds k patches per channel).
MAX_LAYERS = 3


def _round(values: list[float], digits: int = 4) -> list[float | None]:
    out: list[float | None] = []
    for v in values:
        v = float(v)
        out.append(float(f"{v:.{digits}g}") if np.isfinite(v) else None)
    return out


def png_url(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class FeatVisWorker:
    """Feature visualisations in a background thread, one at a time, newest request first.

    Args:
        bundle: the model; the worker runs a deep copy of its module (made on the first job).
        steps, size: optimisation steps and image side.
        share: at most this share of the wall clock is spent optimising (the rest sleeps).
        threads: torch intra-op threads of the worker thread (per thread: the engine keeps its own).
    """

    def __init__(self, bundle: ModelBundle, *, steps: int = 64, size: int = 96, share: float = 0.25,
                 threads: int = 1, cache_dir: str | Path | None = None) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.bundle, self.steps, self.size, self.share, self.threads = bundle, steps, size, share, threads
        self.cache_dir = cache_dir
        self._vis: FeatureVis | None = None
        self._cond = threading.Condition()
        self._wanted: tuple[LayerInfo, int] | None = None
        self._cancel = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.jobs: dict[tuple[str, int], dict] = {}  # (layer, channel) -> state for the page
        self.step_s: deque[float] = deque(maxlen=64)

    # -- the page's side ----------------------------------------------------------------------
    def request(self, layer: LayerInfo, channel: int) -> dict:
        """Ask for ``layer``:``channel`` (replacing any other pending or running request); its state."""
        key = (layer.name, channel)
        with self._cond:
            job = self.jobs.get(key)
            if job is not None and job["state"] == "done":
                return dict(job)
            if self._wanted is None or (self._wanted[0].name, self._wanted[1]) != key:
                if self._wanted is not None:
                    self._cancel.set()  # the user moved on: stop the older one at its next step
                self._wanted = (layer, channel)
                if job is None or job["state"] in ("error", "cancelled"):
                    job = self.jobs[key] = {"layer": layer.name, "channel": channel, "state": "queued",
                                            "step": 0, "steps": self.steps}
                self._start()
                self._cond.notify_all()
            return dict(self.jobs[key])

    def state(self, layer: str, channel: int) -> dict | None:
        with self._cond:
            job = self.jobs.get((layer, channel))
            return None if job is None else dict(job)

    def image(self, layer: str, channel: int) -> np.ndarray | None:
        return None if self._vis is None else self._vis.cached(layer, channel, self.steps, self.size)

    # -- the thread ------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="convscope-featvis", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        with self._cond:
            self._stop = True
            self._cancel.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _model(self) -> FeatureVis:
        if self._vis is None:
            module = copy.deepcopy(self.bundle.module)
            for p in module.parameters():
                p.requires_grad_(False)
            self._vis = FeatureVis(dataclasses.replace(self.bundle, module=module), self.cache_dir)
        return self._vis

    def _run(self) -> None:
        torch.set_num_threads(self.threads)  # this thread's OpenMP pool only
        while True:
            with self._cond:
                while self._wanted is None and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                layer, channel = self._wanted  # type: ignore[misc]
                self._cancel.clear()
                job = self.jobs[(layer.name, channel)]
                job["state"] = "running"
            t_last = [time.perf_counter()]

            def progress(step: int, steps: int, job: dict = job, t_last: list = t_last) -> None:
                now = time.perf_counter()
                busy = now - t_last[0]
                self.step_s.append(busy)
                job["step"], job["steps"] = step, steps
                # yield: sleep so that optimising takes at most `share` of the wall clock
                if self.share < 1 and step < steps:
                    self._cancel.wait(busy * (1 - self.share) / self.share)
                t_last[0] = time.perf_counter()

            try:
                self._model().render(layer, channel, steps=self.steps, size=self.size, progress=progress,
                                     cancel=self._cancel)
                state = "done"
            except Cancelled:
                state = "cancelled"
            except Exception as exc:  # a unit that cannot be optimised must not end the worker
                log.warning("feature visualisation failed", exc_info=True)
                state = "error"
                job["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            with self._cond:
                job["state"] = state
                if self._wanted is not None and (self._wanted[0].name, self._wanted[1]) == (layer.name, channel):
                    self._wanted = None


class UnitsSession:
    """The unit explorer's state for one dashboard.

    Args:
        bundle: the model.
        layers: the engine's ``layer_info`` (name -> LayerInfo), which the ``units`` view sees as
            ``Frame.layers`` and uses to find this session.
        k: top patches per channel; ``patch``: side of the stored crops.
        featvis: a :class:`FeatVisWorker` (None: no feature visualisation).
    """

    def __init__(self, bundle: ModelBundle, layers: dict[str, LayerInfo], *, k: int = 9, patch: int = 48,
                 featvis: FeatVisWorker | None = None) -> None:
        self.bundle, self.layers = bundle, layers
        self.live = LiveUnits(bundle, k=k, patch=patch)
        self.featvis = featvis
        self.frame_index = 0  # the input frame being computed (set by follow())
        self._counter = 0
        self.lock = threading.Lock()
        self.update_s: deque[float] = deque(maxlen=64)
        self._order: list[str] = []  # layers by last use, for MAX_LAYERS

    def follow(self, source: Any) -> None:
        """Note the index of every frame ``source.latest()`` hands out: the engine thread computes
        the newest one, so an observed frame is tagged with the input frame a seek goes back to."""
        original = source.latest

        def latest(*args: Any, **kwargs: Any) -> Any:
            frame = original(*args, **kwargs)
            if frame is not None:
                index = getattr(frame, "index", None)
                if isinstance(index, int | np.integer):
                    self.frame_index = int(index)
                else:
                    self._counter += 1
                    self.frame_index = self._counter
            return frame

        source.latest = latest

    def load(self, outdir: str | Path) -> list[str]:
        """Show a ``convscope units`` OUTDIR's dataset-wide top patches; returns its layers."""
        self.live.load(outdir)
        return sorted(self.live.dataset["layers"])  # type: ignore[index]

    # -- the engine thread (the units view) ---------------------------------------------------
    def observe(self, layer: LayerInfo, acts: torch.Tensor, images: torch.Tensor) -> None:
        t0 = time.perf_counter()
        with self.lock:
            if layer.name in self._order:
                self._order.remove(layer.name)
            self._order.append(layer.name)
            while len(self._order) > MAX_LAYERS:
                self.live.trackers.pop(self._order.pop(0), None)
            self.live.observe(layer, acts, [self.frame_index] * acts.shape[0], images=images)
        self.update_s.append(time.perf_counter() - t0)

    def summary(self, layer: str) -> dict:
        tracker = self.live.trackers.get(layer)
        return {"layer": layer, "frames": 0 if tracker is None else tracker.frames,
                "source": "dataset" if self._dataset_has(layer) else "session",
                "update_ms": round(1000 * float(np.median(self.update_s)), 3) if self.update_s else None}

    def _dataset_has(self, layer: str) -> bool:
        return self.live.dataset is not None and layer in self.live.dataset["layers"]

    # -- the page's queries (a worker thread of the server) -----------------------------------
    def query(self, layer: str, channel: int, order: str = "mean", featvis: bool = True) -> dict:
        """What the unit explorer shows for ``layer``:``channel``: top patches, histogram, overview,
        and the feature visualisation's state (asked for when ``featvis``)."""
        with self.lock:
            answer = self.live.channel(layer, channel)
            if answer["source"] == "dataset":  # dataset patches; the session still gives the histogram
                tracker = self.live.trackers.get(layer)
                if tracker is not None:
                    counts, lo, hi = tracker.histogram(channel)
                    answer["histogram"] = {"counts": counts, "min": lo, "max": hi}
            overview = self.live.overview(layer, order)
        for t in answer["top"]:
            t["score"] = _round([t["score"]])[0]
        if answer.get("histogram"):
            h = answer["histogram"]
            h["min"], h["max"] = _round([h["min"], h["max"]])
        overview["mean"] = _round(overview["mean"])
        overview["last"] = _round(overview["last"])
        overview["order_by"] = order
        answer["overview"] = overview
        answer["frames"] = overview["frames"]
        answer["featvis"] = self._featvis(layer, channel, featvis)
        return answer

    def _featvis(self, layer: str, channel: int, start: bool) -> dict | None:
        if self.featvis is None:
            return None
        info = self.layers.get(layer)
        state = self.featvis.request(info, channel) if start and info is not None else \
            self.featvis.state(layer, channel)
        if state is None:
            return {"layer": layer, "channel": channel, "state": "idle", "step": 0, "steps": self.featvis.steps}
        if state["state"] == "done":
            image = self.featvis.image(layer, channel)
            state["image"] = png_url(image) if image is not None else None
        return state

    def close(self) -> None:
        """Stop the feature visualisation and let the engine's frames go unobserved."""
        from convscope.views.units import unbind

        unbind(self.layers)
        if self.featvis is not None:
            self.featvis.stop()
