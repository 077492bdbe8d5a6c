"""The engine thread: newest frame + current selection -> ``Engine.run`` -> encode -> publish.

Two threads, each handing on only its newest value: the engine thread runs the model and leaves
the :class:`Result` in a slot; the encoder thread turns the newest result into JPEG/PNG messages
and publishes them. Encoding (which releases the GIL) thus overlaps the next frame's engine run
instead of adding to it, and if encoding ever falls behind, a result is replaced, never queued.
Neither thread waits on the network: publishing hands the encoded frame to a callback that only
schedules work on the event loop. While paused it keeps the last frame and recomputes it when
the selection changes, so clicks still work on a frozen picture. When the source ends the last
frame stays on screen the same way.

The status line's *network FPS* is measured here by a bare forward pass (no hooks, no gradient,
``inference_mode``) of the current frame every few seconds: what the model alone could do on
this device. *Dashboard FPS* is the rate of frames actually published, so their ratio is what
the visualisation costs.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope.errors import ConvscopeError
from convscope.server.encode import EncodedFrame, encode_result
from convscope.server.lanes import Lanes
from convscope.server.protocol import ViewState

if TYPE_CHECKING:
    from convscope.engine.seams import FrameEngine
    from convscope.sources.types import FrameSource
    from convscope.views import Result

log = logging.getLogger(__name__)

#: Seconds between two bare forward passes for the network-FPS estimate.
NET_PROBE_EVERY = 5.0
FPS_WINDOW = 3.0


def make_net_probe(bundle: Any) -> Callable[[np.ndarray], float]:
    """A function timing one bare forward of ``bundle.module`` on a frame (seconds)."""
    import torch

    from convscope.models.preprocess import to_input

    def probe(image: np.ndarray) -> float:
        with torch.inference_mode():
            x = to_input(image, bundle.preprocessing, bundle.device)
            if bundle.device.type == "cuda":
                torch.cuda.synchronize(bundle.device)
            t0 = time.perf_counter()
            bundle.module(x)
            if bundle.device.type == "cuda":
                torch.cuda.synchronize(bundle.device)
            return time.perf_counter() - t0

    return probe


class Pipeline:
    """Runs the engine on the newest frame with the shared selection, in its own thread.

    Args:
        engine: has ``run(image, request) -> Result``.
        source: has ``latest(timeout)``, ``info``, ``state``, ``dropped``.
        state: the initial shared selection.
        quality: JPEG quality of the panels.
        net_probe: times a bare forward of an image (see :func:`make_net_probe`); ``None`` falls
            back to the engine's own ``forward`` timing.
    """

    def __init__(self, engine: FrameEngine, source: FrameSource, state: ViewState, *, quality: int = 80,
                 net_probe: Callable[[np.ndarray], float] | None = None, lanes: Lanes | None = None) -> None:
        self.engine = engine
        #: which maps run every frame and which in the background (:mod:`convscope.server.lanes`)
        self.lanes = lanes if lanes is not None else Lanes(engine, None)
        self._frame_number = 0  # distinct input frames computed (a background map's age is counted in these)
        self._frame_obj: Any = None
        self.lanes.on_result = self._background_done
        self.source = source
        self.quality = quality
        self.net_probe = net_probe
        self._publish: Callable[[EncodedFrame], None] = lambda frame: None
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._state = state
        self._version = 0
        self._paused = False
        self._threads: list[threading.Thread] = []
        self._slot = threading.Condition()
        self._pending: tuple[Result, int, dict | None, dict] | None = None  # newest (Result, seq, where, background) not encoded
        self._seq = 0
        self._times: deque[float] = deque(maxlen=240)
        self._run_s: deque[float] = deque(maxlen=30)
        self._encode_s: deque[float] = deque(maxlen=30)
        self._bytes: deque[int] = deque(maxlen=30)
        self._net_s: deque[float] = deque(maxlen=5)
        self._last_probe = 0.0
        self.error: str | None = None
        self.frames = 0
        self.replaced = 0  # results the encoder never saw because a newer one came first
        # A file or folder: a seekable player (issue 14) whose play/pause is the dashboard's.
        self.player = source if getattr(source, "seekable", False) else None
        self.computed: deque[int] = deque(maxlen=256)  # input frame indices computed, newest last
        self.snapshot_dir: Any = None  # a Path: where snapshots go (None: snapshots are off)
        self.snapshot_info: dict = {}  # model and source, for snapshot.json
        self._snapshots: list[Callable[[dict | None, str | None], None]] = []
        self._ignored_drops = 0  # a live source's drops while paused: not "skipped"
        self._paused_drops: int | None = None
        self.last_result: Result | None = None  # the newest Result (convscope.live's snapshot())

    # -- shared selection -------------------------------------------------------------------
    @property
    def state(self) -> ViewState:
        with self._lock:
            return self._state

    @property
    def paused(self) -> bool:
        return self.player.paused if self.player is not None else self._paused

    def update(self, state: ViewState) -> None:
        """Make ``state`` the next frame's selection (recomputed at once when paused)."""
        with self._lock:
            self._state = state
            self._version += 1
        self._changed.set()

    def _background_done(self) -> None:
        """A background map is ready: the frame loop publishes it with its next frame, and a frame
        that is not moving (paused, ended, a stalled stream) is recomputed to show it."""
        with self._lock:
            self._version += 1
        self._changed.set()

    def set_paused(self, paused: bool) -> None:
        if self.player is not None:
            self.player.set_playing(not paused)
        else:
            dropped = int(getattr(self.source, "dropped", 0))
            if paused and not self._paused:
                self._paused_drops = dropped
            elif not paused and self._paused and self._paused_drops is not None:
                self._ignored_drops += dropped - self._paused_drops
                self._paused_drops = None
            self._paused = paused
        self._changed.set()

    def skipped(self) -> int:
        """Frames a live source produced while the dashboard was busy computing, counted only
        while playing (a paused dashboard does not want them); always 0 for a file or folder."""
        if self.player is not None:
            return 0
        dropped = int(getattr(self.source, "dropped", 0))
        if self._paused and self._paused_drops is not None:
            dropped = self._paused_drops
        return max(0, dropped - self._ignored_drops)

    def request_snapshot(self, done: Callable[[dict | None, str | None], None]) -> None:
        """Write a snapshot of the current frame and selection (in the engine thread, soon);
        ``done(reply, None)`` or ``done(None, error)`` is called from that thread."""
        with self._lock:
            self._snapshots.append(done)
        self._changed.set()

    def _take_snapshots(self, frame: Any, state: ViewState) -> None:
        from convscope.server.snapshot import _jsonable, new_folder, write_snapshot

        with self._lock:
            pending, self._snapshots = self._snapshots, []
        try:
            request = state.to_request(keep_raw=True)
            result = self.engine.run(frame.image, request)
            where = {"index": int(frame.index), "time": round(float(frame.timestamp), 4), "path": frame.path}
            folder = new_folder(self.snapshot_dir, where["index"] if self.player is not None else None)
            info = {**self.snapshot_info, "frame": where, "request": _jsonable(request)}
            report = write_snapshot(folder, frame=frame.image, result=result, state=state.as_dict(), info=info)
            reply = {"name": folder.name, "folder": str(folder), "url": f"/snapshots/{folder.name}.zip",
                     "files": len(list(folder.iterdir())), "frame": where, "maps": sorted(report["maps"])}
            outcome: tuple[dict | None, str | None] = (reply, None)
        except Exception as exc:  # a full disk or an unwritable folder must not stop the dashboard
            log.warning("snapshot failed", exc_info=True)
            outcome = (None, f"snapshot failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
        for done in pending:
            done(*outcome)

    def set_publisher(self, publish: Callable[[EncodedFrame], None]) -> None:
        """``publish`` is called from the encoder thread and must not block."""
        self._publish = publish

    # -- thread -------------------------------------------------------------------------------
    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._loop, name="convscope-engine", daemon=True),
            threading.Thread(target=self._encoder, name="convscope-encoder", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 1.5) -> bool:
        """Ask the threads to stop; True if they ended within ``timeout`` seconds."""
        self._stop.set()
        self._changed.set()
        with self._slot:
            self._slot.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        lanes_done = self.lanes.stop(max(0.05, deadline - time.monotonic()))
        return lanes_done and not any(thread.is_alive() for thread in self._threads)

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def _loop(self) -> None:
        frame = None
        done_version = -1
        while not self._stop.is_set():
            self._changed.clear()
            with self._lock:
                state, version = self._state, self._version
            t0 = time.perf_counter()
            try:
                new = None if self._paused and self.player is None else self.source.latest(0.05)
            except Exception as exc:  # a frame that cannot be read must not end the dashboard
                self._fail(exc)
                new = None
                self._changed.wait(0.2)
            if new is not None and new is not frame:
                frame = new
            elif self._snapshots and frame is not None:
                self._take_snapshots(frame, state)
                continue
            elif frame is None or version == done_version:
                if self.paused or time.perf_counter() - t0 < 0.01:  # nothing waited in latest()
                    self._changed.wait(0.05)
                continue
            done_version = version
            self._step(frame.image, state, frame)
            if self._snapshots:
                self._take_snapshots(frame, state)

    def _step(self, image: np.ndarray, state: ViewState, frame: Any = None) -> None:
        if frame is None or frame is not self._frame_obj:
            self._frame_number += 1
            self._frame_obj = frame
        every_frame = self.player is not None and self.player.every_frame
        request, background = self.lanes.split(state, every_frame)
        self.lanes.offer(image, self._frame_number, state, background)
        try:
            t0 = time.perf_counter()
            result = self.engine.run(image, request)
            seconds = time.perf_counter() - t0
            self._run_s.append(seconds)
            result, waiting = self.lanes.merge(result, self._frame_number, seconds)
            self.last_result = result
        except Exception as exc:
            self._fail(exc)
            return
        where = None if frame is None else {"index": int(frame.index), "time": round(float(frame.timestamp), 4)}
        if where is not None:
            self.computed.append(where["index"])
        with self._slot:
            if self.player is not None and self.player.every_frame:
                while self._pending is not None and not self._stop.is_set():  # every frame is shown
                    self._slot.wait(0.1)
            if self._pending is not None:
                self.replaced += 1
            self._pending = (result, self._seq, where, waiting)
            self._seq += 1
            self._slot.notify()
        now = time.perf_counter()
        if self.net_probe is None:
            forward = result.timings.get("forward")
            if forward:
                self._net_s.append(forward)
        elif now - self._last_probe >= NET_PROBE_EVERY:
            try:
                if not self._net_s:
                    self.net_probe(image)  # warm-up, not counted
                self._net_s.append(self.net_probe(image))
            except Exception:  # the probe is only an estimate; never break the stream for it
                log.debug("net probe failed", exc_info=True)
            self._last_probe = time.perf_counter()

    def _encoder(self) -> None:
        while not self._stop.is_set():
            with self._slot:
                while self._pending is None and not self._stop.is_set():
                    self._slot.wait(0.25)
                if self._pending is None:
                    return
                (result, seq, where, waiting), self._pending = self._pending, None
                self._slot.notify_all()
            try:
                encoded = encode_result(result, self.quality, seq)
                if where is not None:
                    encoded.meta["source_frame"] = where  # which input frame (the timeline's position)
                encoded.meta["background"] = waiting  # maps computed off the frame loop: age, cost
            except Exception as exc:
                self._fail(exc)
                continue
            self.error = None
            self.frames += 1
            self._times.append(time.perf_counter())
            self._encode_s.append(encoded.seconds)
            self._bytes.append(encoded.nbytes)
            self._publish(encoded)

    def _fail(self, exc: Exception) -> None:
        """Keep the dashboard alive after a failure and say what it was in the status line."""
        if self._stop.is_set():
            return  # stopping: the engine may be closed under a frame still running, nothing to report
        if isinstance(exc, ConvscopeError):
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return
        if self.error is None or not self.error.startswith("internal error"):
            log.exception("engine failed", exc_info=exc)
        self.error = f"internal error: {type(exc).__name__}: {str(exc)[:120]}"
        time.sleep(0.2)

    # -- numbers for the status line ------------------------------------------------------------
    def stats(self) -> dict:
        """Source state, dashboard/network FPS and their ratio, dropped frames, encode share."""
        now = time.perf_counter()
        times = [t for t in list(self._times) if now - t <= FPS_WINDOW]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0
        net = list(self._net_s)
        net_fps = 1.0 / statistics.median(net) if net else 0.0
        run = list(self._run_s)
        enc = list(self._encode_s)
        run_ms = 1000 * statistics.fmean(run) if run else 0.0
        enc_ms = 1000 * statistics.fmean(enc) if enc else 0.0
        state = self.source.state
        info = self.source.info
        return {
            "source": {"status": state.status, "attempt": state.attempt, "last_error": state.last_error,
                       "kind": info.kind, "spec": info.spec, "width": info.width, "height": info.height},
            "paused": self.paused,
            "fps": round(fps, 2),
            "net_fps": round(net_fps, 2),
            "net_fps_method": "bare forward every 5 s" if self.net_probe else "engine forward timing",
            "ratio": round(fps / net_fps, 3) if net_fps else None,
            "dropped": int(getattr(self.source, "dropped", 0)),
            "skipped": self.skipped(),
            "live": self.player is None,
            "frames": self.frames,
            "engine_ms": round(run_ms, 2),
            "encode_ms": round(enc_ms, 2),
            # what encoding would add to a frame if it ran in line; it overlaps the next run instead
            "encode_share": round(enc_ms / (run_ms + enc_ms), 4) if run_ms + enc_ms else None,
            "replaced": self.replaced,
            "frame_bytes": int(statistics.fmean(self._bytes)) if self._bytes else 0,
            "error": self.error or self.lanes.error,
        }
