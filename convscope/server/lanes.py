"""Expensive maps never stall the cheap ones: the dashboard's every-frame and background lanes.

Most maps cost almost nothing once the frame's one forward and merged backward have run
(Grad-CAM and its family, guided backprop, saliency). A few need extra input rows (Integrated
Gradients' steps, SmoothGrad's noisy copies, Score-CAM's masked inputs, augmentation smoothing):
their cost is a multiple of the whole frame. If the dashboard computed them every frame, every
panel would update at their pace.

So a map whose algorithm declares rows (:class:`convscope.vocabulary.Rows`) runs in the
*background lane*: its own thread and its own engine (a private copy of the model, so hooks and
captures never mix with the frame loop's), on the newest frame whenever its previous result is
done, one map at a time, stalest first. Its panel shows the newest result it has, how many frames
old that is, and what it cost. Everything else (input, predictions, activations, cheap maps) is
computed every frame as before.

The split is measured, not guessed: a background map whose own cost (its rows and its drawing,
``Result.costs``) is at most half of ``share`` of an every-frame run moves into the frame loop;
an every-frame map whose cost grows above ``share`` of the rest of the frame moves back out.
``share`` is ``convscope live --background-share`` (default 0.2: no map may lower the frame rate
by more than about a fifth). With ``--background-share 0`` every row map stays in the background;
``--no-background`` computes everything in the frame loop. Playback in "every frame" mode also
computes everything in the loop, so each frame has every map.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convscope import algorithms
from convscope.algorithms.options import active as algorithm_options

if TYPE_CHECKING:
    from convscope.engine.seams import FrameEngine
    from convscope.request import ViewRequest
    from convscope.server.protocol import ViewState
    from convscope.views import Result

log = logging.getLogger(__name__)

#: Nice value of the background thread (Linux: per thread), so the frame loop is scheduled first.
BACKGROUND_NICE = 10


@dataclass(frozen=True)
class BackgroundMap:
    """The newest background result of one map.

    Attributes:
        panel: the map's panel (``Result.panels["map:<name>"]``).
        request: the request it was computed for (a different one means the selection changed).
        frame: the frame loop's frame number it was computed on.
        seconds: the whole background run (forward, rows, backward, drawing, copy).
        cost: the map's own share of that (``Result.costs``), None where not measured.
    """

    panel: Any
    request: ViewRequest
    frame: int
    seconds: float
    cost: float | None


def background_engine_factory(bundle: Any, **engine_args: Any) -> Callable[[], FrameEngine]:
    """A function building the background lane's engine on a private copy of ``bundle``'s model.

    The copy is made when the first background map is asked for, not before (most sessions
    never need it). Hooks a user or the frame loop's engine left on the module are not copied.
    """

    def make() -> FrameEngine:
        from convscope.engine import Engine

        module = copy.deepcopy(bundle.module)
        for sub in module.modules():  # a hook on the user's module must not fire twice or cross lanes
            for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
                table = getattr(sub, hooks, None)
                if isinstance(table, dict):
                    table.clear()
        return Engine(dataclasses.replace(bundle, module=module), render_threads=None, **engine_args)

    return make


def row_maps(engine: FrameEngine, request: ViewRequest) -> tuple[str, ...]:
    """The enabled algorithms of ``request`` that declare extra input rows (costly ones)."""
    req = engine.resolve(request)
    out = []
    with algorithm_options(req.options):
        for name in req.algorithms:
            algo = algorithms.get(name)
            target = req.target_for(algo.target_role)
            if algo.needs(target, req.cam_layer if algo.uses_layer else None).rows:
                out.append(name)
    return tuple(out)


class Lanes:
    """Splits each frame's request into the every-frame part and the background maps.

    Args:
        engine: the frame loop's engine (only ``resolve`` is used here).
        make_engine: builds the background engine (:func:`background_engine_factory`); ``None``
            turns the background lane off (every map every frame).
        share: see the module docstring.
    """

    def __init__(self, engine: FrameEngine, make_engine: Callable[[], FrameEngine] | None,
                 share: float = 0.2) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"the background share must be between 0 and 1, got {share}")
        self.engine = engine
        self.make_engine = make_engine
        self.share = share
        self.error: str | None = None  # why the background lane is off, for the status line
        self.inline: set[str] = set()  # row maps measured cheap enough for the frame loop
        self._engine: FrameEngine | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._newest: tuple[Any, int, ViewState] | None = None  # image, frame number, selection
        self._wanted: tuple[str, ...] = ()
        self._done: dict[str, BackgroundMap] = {}
        self._frame_s: float | None = None  # a recent every-frame run, for the measured split
        #: called (from the background thread) when a map has a new result: a paused dashboard
        #: recomputes its frame to show it
        self.on_result: Callable[[], None] = lambda: None

    @property
    def enabled(self) -> bool:
        return self.make_engine is not None and self.error is None

    # -- the frame loop's side ---------------------------------------------------------------
    def split(self, state: ViewState, every_frame: bool = False) -> tuple[ViewRequest, tuple[str, ...]]:
        """The every-frame request for ``state`` and the maps left to the background."""
        request = state.to_request()
        if not self.enabled or every_frame:
            return request, ()
        try:
            costly = row_maps(self.engine, request)
        except Exception:  # an invalid selection: the frame loop reports it on its own run
            return request, ()
        background = tuple(name for name in costly if name not in self.inline)
        if not background:
            return request, ()
        keep = tuple(a for a in request.algorithms if a not in background)
        return dataclasses.replace(request, algorithms=keep), background

    def offer(self, image: Any, frame: int, state: ViewState, background: tuple[str, ...]) -> None:
        """The newest frame and selection, and which maps the background should keep fresh."""
        with self._lock:
            self._newest = (image, frame, state)
            self._wanted = background
            for name in list(self._done):
                if name not in background and name not in self.inline:
                    del self._done[name]  # switched off: its old picture must not come back
        if background:
            self._ensure_thread()
            self._wake.set()

    def merge(self, result: Result, frame: int, seconds: float) -> tuple[Result, dict[str, dict]]:
        """``result`` with the newest background panels added, and the page's ``background`` entry.

        Also moves maps between the lanes on measured costs (see the module docstring).
        """
        self._frame_s = seconds if self._frame_s is None else 0.8 * self._frame_s + 0.2 * seconds
        self._demote(result)
        with self._lock:
            wanted, done = self._wanted, dict(self._done)
            current = self._newest[2] if self._newest is not None else None
        panels = dict(result.panels)
        info: dict[str, dict] = {}
        for name in wanted:
            got = done.get(name)
            if got is None:
                info[name] = {"pending": True, "frames_old": None, "ms": None, "stale": False}
                continue
            panels[f"map:{name}"] = got.panel
            stale = current is not None and got.request != _background_request(current, name)
            info[name] = {"pending": False, "frames_old": max(0, frame - got.frame),
                          "ms": round(got.seconds * 1000.0, 1), "stale": stale}
            self._promote(name, got)
        merged = dataclasses.replace(result, panels=panels)
        return merged, info

    def _promote(self, name: str, got: BackgroundMap) -> None:
        if got.cost is not None and self._frame_s and got.cost <= 0.5 * self.share * self._frame_s:
            log.info("background map %s costs %.1f ms: computed every frame from now on", name, 1000 * got.cost)
            self.inline.add(name)

    def _demote(self, result: Result) -> None:
        for name in list(self.inline):
            cost = result.costs.get(f"map:{name}")
            if cost is None or self._frame_s is None:
                continue
            if cost > self.share * max(self._frame_s - cost, 1e-6):
                log.info("map %s costs %.1f ms: back to the background", name, 1000 * cost)
                self.inline.discard(name)

    # -- the background thread -----------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._loop, name="convscope-background", daemon=True)
            self._thread.start()

    def _next(self) -> tuple[str, Any, int, ViewRequest] | None:
        """The stalest map that is not up to date with the newest frame and selection."""
        with self._lock:
            if self._newest is None:
                return None
            image, frame, state = self._newest
            best = None
            for name in self._wanted:
                request = _background_request(state, name)
                got = self._done.get(name)
                if got is not None and got.frame == frame and got.request == request:
                    continue
                age = -1 if got is None else got.frame
                if best is None or age < best[0]:
                    best = (age, name, request)
            return None if best is None else (best[1], image, frame, best[2])

    def _loop(self) -> None:
        try:  # Linux schedules threads as tasks: this one yields to the frame loop
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except (AttributeError, OSError):
            pass
        while not self._stop.is_set():
            job = self._next()
            if job is None:
                self._wake.wait(0.25)
                self._wake.clear()
                continue
            name, image, frame, request = job
            try:
                if self._engine is None:
                    assert self.make_engine is not None
                    self._engine = self.make_engine()
                t0 = time.perf_counter()
                result = self._engine.run(image, request)
                seconds = time.perf_counter() - t0
            except Exception as exc:  # the background lane is optional: say why and go on without it
                if self._engine is None:
                    self.error = f"background maps off: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
                    log.warning(self.error)
                    return
                log.warning("background map %s failed", name, exc_info=True)
                time.sleep(0.5)
                continue
            panel = result.panels.get(f"map:{name}")
            if panel is None:
                continue
            with self._lock:
                if name not in self._wanted:
                    continue
                self._done[name] = BackgroundMap(panel, request, frame, seconds, result.costs.get(f"map:{name}"))
            self.on_result()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop the thread and close its engine; True if it ended within ``timeout``."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        alive = thread is not None and thread.is_alive()
        if not alive and self._engine is not None:
            self._engine.close()
            self._engine = None
        return not alive


def _background_request(state: ViewState, name: str) -> ViewRequest:
    """What the background engine runs for one map: only that map (and the required views)."""
    return state.to_request(algorithms=(name,), panels=())
