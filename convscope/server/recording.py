"""Recording the dashboard (issue 14, item 4): start/stop in the page, MP4 and GIF on the server.

The pipeline's encoder thread hands every published :class:`~convscope.views.Result` to the
:class:`Recorder` (``Pipeline.recorder``); while a recording runs, its own thread tiles the chosen
panels (or every picture panel: the full composite) into one frame and encodes it with the same
PyAV writers as ``convscope record`` (H.264 yuv420p for ``.mp4``, an adaptive-palette GIF).

Two clocks:

* **dashboard rate** (default): the output runs at ``fps`` frames a second of wall-clock time;
  each output frame shows the newest panel picture at that moment (a frame the dashboard shows
  for 0.5 s lasts 0.5 s in the video). A gap longer than :data:`MAX_GAP_S` (a pause) is cut to it.
* **every frame** (files and folders only): one output frame per input frame, at the input's
  frame rate; the player is switched to "every frame" while recording, so the dashboard computes
  each input frame in turn and none is passed over (offline speed).

Files go to ``--recordings DIR`` (default: the snapshots folder) as ``recording-<date>-<time>.mp4``
and ``.gif`` and are downloaded through ``GET /recordings/<name>``. A disk quota
(``--snapshots-max-mb``) is checked before a snapshot or recording starts and while recording:
when it is reached the recording stops and keeps what it wrote; nothing is ever deleted.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convscope.errors import ConvscopeError, RequestError
from convscope.server.protocol import _check_keys, _show

log = logging.getLogger(__name__)

FORMATS = ("mp4", "gif")
DEFAULT_FPS = 10.0
MIN_FPS, MAX_FPS = 1.0, 30.0
DEFAULT_SIZE = 224
MIN_SIZE, MAX_SIZE = 32, 720
MAX_PANELS = 32
MAX_GAP_S = 2.0  # a pause longer than this lasts MAX_GAP_S in a dashboard-rate recording
COLUMNS = 4  # the full composite: at most this many panels a row
GAP = 4
DEFAULT_QUOTA_MB = 2000.0
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}\.(mp4|gif)$")


@dataclass(frozen=True)
class RecordStart:
    """``{"type": "record", "action": "start", ...}``.

    Attributes:
        panels: panel names to tile left to right (``map:`` optional for algorithms); ``None``:
            every picture panel the dashboard shows, in rows (the full composite).
        every_frame: one output frame per input frame (files and folders only).
        fps: the output rate on the dashboard's clock (ignored with ``every_frame``).
        size: each panel's height in the output, pixels.
        formats: ``mp4`` and/or ``gif``.
    """

    panels: tuple[str, ...] | None = None
    every_frame: bool = False
    fps: float = DEFAULT_FPS
    size: int = DEFAULT_SIZE
    formats: tuple[str, ...] = FORMATS


@dataclass(frozen=True)
class RecordStop:
    pass


def parse_record(msg: dict, *, folder: Path | None, player: Any | None, known: tuple[str, ...]) -> RecordStart | RecordStop:
    """Check a ``record`` message (one-line :class:`RequestError`; nothing changes on error).

    Args:
        folder: where recordings go (``None``: the dashboard keeps none).
        player: the file/folder player, ``None`` for live sources.
        known: panel names a recording may choose (views that draw a picture, ``map:<algorithm>``).
    """
    action = msg.get("action")
    if action == "stop":
        _check_keys(msg, ("action",), "record")
        return RecordStop()
    if action != "start":
        raise RequestError(f"record needs action 'start' or 'stop', got {_show(action)}")
    _check_keys(msg, ("action", "panels", "every_frame", "fps", "size", "formats"), "record")
    if folder is None:
        raise RequestError("this dashboard keeps no recordings (start it with --recordings DIR or --snapshots DIR)")
    panels = msg.get("panels", "all")
    chosen: tuple[str, ...] | None
    if panels == "all" or panels is None:
        chosen = None
    else:
        if not isinstance(panels, list) or not panels or len(panels) > MAX_PANELS \
                or not all(isinstance(p, str) for p in panels):
            raise RequestError(f"panels must be \"all\" or a non-empty list of panel names, got {_show(panels)}")
        names = []
        for p in panels:
            name = p.replace("-", "_") if not p.startswith("map:") else p
            if name not in known and f"map:{name}" in known:
                name = f"map:{name}"
            if name not in known:
                raise RequestError(f"unknown panel {p[:40]!r}; known: {', '.join(known)}")
            names.append(name)
        chosen = tuple(dict.fromkeys(names))
    every = msg.get("every_frame", False)
    if not isinstance(every, bool):
        raise RequestError(f"every_frame must be true or false, got {_show(every)}")
    if every and player is None:
        raise RequestError("every_frame needs a file or folder source; this one plays live (newest frame)")
    fps = msg.get("fps", DEFAULT_FPS)
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
        raise RequestError(f"fps must be a number from {MIN_FPS:g} to {MAX_FPS:g}, got {_show(fps)}")
    size = msg.get("size", DEFAULT_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise RequestError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE}, got {_show(size)}")
    formats = msg.get("formats", list(FORMATS))
    if not isinstance(formats, list) or not formats or not all(f in FORMATS for f in formats):
        raise RequestError(f"formats must be a non-empty list of {', '.join(map(repr, FORMATS))}, got {_show(formats)}")
    return RecordStart(chosen, every, float(fps), size, tuple(dict.fromkeys(formats)))


# -- disk quota ---------------------------------------------------------------------------------
def folder_bytes(*roots: Path | None) -> int:
    """Bytes of the regular files under ``roots`` (each folder counted once; missing ones are 0)."""
    seen: set[Path] = set()
    total = 0
    for root in roots:
        if root is None:
            continue
        root = Path(root).resolve()
        if root in seen or any(root.is_relative_to(s) for s in seen):
            continue
        seen.add(root)
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                try:
                    total += os.stat(os.path.join(dirpath, name), follow_symlinks=False).st_size
                except OSError:
                    pass
    return total


class Quota:
    """At most ``max_mb`` megabytes (10^6 bytes) of files in the snapshot and recording folders.

    Files already there count; nothing is deleted: a snapshot or recording that would pass the
    limit is refused (or stopped) with a one-line message saying what to do.
    """

    def __init__(self, max_mb: float | None, *roots: Path | None) -> None:
        self.max_bytes = None if max_mb is None or max_mb <= 0 else int(max_mb * 1e6)
        self.roots = roots

    def used(self) -> int:
        return folder_bytes(*self.roots)

    def check(self, what: str, extra: int = 0) -> None:
        if self.max_bytes is None:
            return
        used = self.used() + extra
        if used >= self.max_bytes:
            where = ", ".join(dict.fromkeys(str(r) for r in self.roots if r is not None))
            raise RequestError(f"{what} refused: {where} holds {used / 1e6:.1f} MB, the limit is "
                               f"{self.max_bytes / 1e6:g} MB (--snapshots-max-mb); move or delete files there, "
                               "or raise the limit")


# -- composing frames ----------------------------------------------------------------------------
def picture_panels(result: Any) -> list[str]:
    """Every panel of ``result`` that draws a picture (the full composite's panels, in order)."""
    names = []
    for name, panel in result.panels.items():
        if name == "predictions":
            continue
        try:
            images = panel.images()
        except Exception:  # a panel that cannot draw is left out, not fatal
            continue
        if images:
            names.append(name)
    return names


def _picture(result: Any, name: str) -> np.ndarray | None:
    panel = result.panels.get(name)
    if panel is None:
        return None
    images = panel.images()
    return next(iter(images.values())) if images else None


class Layout:
    """Where each panel goes in the output frame, fixed by the first frame (the size never changes).

    ``columns``: panels a row (the chosen panels: all in one row, as ``convscope record`` does).
    Width and height are even (H.264's yuv420p).
    """

    def __init__(self, names: list[str], images: list[np.ndarray], size: int, columns: int) -> None:
        self.names = names
        self.size = size
        self.boxes: list[tuple[int, int, int, int]] = []  # x, y, w, h
        x = y = width = 0
        for i, image in enumerate(images):
            h, w = image.shape[:2]
            tw = max(1, round(w * size / h))
            if i and i % columns == 0:
                x, y = 0, y + size + GAP
            self.boxes.append((x, y, tw, size))
            width = max(width, x + tw)
            x += tw + GAP
        height = y + size
        self.width, self.height = width + width % 2, height + height % 2

    def draw(self, result: Any) -> np.ndarray:
        from PIL import Image

        canvas = np.full((self.height, self.width, 3), 16, np.uint8)
        for name, (x, y, w, h) in zip(self.names, self.boxes, strict=True):
            image = _picture(result, name)
            if image is None:
                canvas[y : y + h, x : x + w] = 40  # a panel turned off mid-recording: a grey tile
                continue
            if image.shape[:2] != (h, w):
                small = image.shape[0] < h / 2
                image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
                    (w, h), Image.NEAREST if small else Image.BILINEAR))
            canvas[y : y + h, x : x + w] = image[..., :3]
        return canvas


# -- one recording -------------------------------------------------------------------------------
class Recording:
    """One running recording: a queue of (result, input index, time) and a writer thread."""

    def __init__(self, folder: Path, start: RecordStart, rate: float, quota: Quota,
                 on_error: Callable[[str], None]) -> None:
        from convscope.cli.record import Writer

        self.start_msg = start
        self.rate = rate
        self.quota = quota
        self.on_error = on_error
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"recording-{stamp}"
        n = 2
        while any((folder / f"{base}.{f}").exists() for f in FORMATS):
            base = f"recording-{stamp}-{n}"
            n += 1
        self.name = base
        self.paths = [folder / f"{base}.{f}" for f in start.formats]
        self.writers = []
        try:
            for path in self.paths:
                self.writers.append(Writer(path, rate, fast_palette=True))
        except ConvscopeError:
            for w in self.writers:
                w.close()
            raise
        self.quota_base = quota.used() if quota.max_bytes is not None else 0
        self.layout: Layout | None = None
        self.frames = 0  # output frames written
        self.error: str | None = None
        self.t0: float | None = None
        self.last_index: int | None = None
        self.indices: list[int | None] = []  # every-frame mode: the input frame of each output frame
        self.prev: np.ndarray | None = None
        self.started = time.monotonic()
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._stopping = threading.Event()
        self._feeding = threading.Condition()  # feeds in progress finish before the writer stops
        self._accepting = True
        self._inflight = 0
        self._thread = threading.Thread(target=self._run, name="convscope-recorder", daemon=True)
        self._thread.start()

    # called from the pipeline's encoder thread
    def feed(self, result: Any, index: int | None, now: float) -> None:
        with self._feeding:
            if not self._accepting or self.error is not None:
                return
            self._inflight += 1
        item = (result, index, now)
        try:
            if self.start_msg.every_frame:  # none may be lost: wait (the engine waits for the encoder)
                while self.error is None:
                    try:
                        self._queue.put(item, timeout=0.1)
                        return
                    except queue.Full:
                        continue
            else:
                try:
                    self._queue.put_nowait(item)
                except queue.Full:  # the writer is behind: the newest wins, the clock fills the gap
                    pass
        finally:
            with self._feeding:
                self._inflight -= 1
                self._feeding.notify_all()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopping.is_set():
                    break
                continue
            if self.error is not None:
                continue
            try:
                self._take(*item)
            except Exception as exc:  # a full disk must not stop the dashboard; keep what was written
                log.warning("recording failed", exc_info=True)
                self._fail(f"recording stopped: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
            self.on_error(message)

    def _write(self, image: np.ndarray) -> None:
        for writer in self.writers:
            writer.add(image)
        self.frames += 1
        if self.quota.max_bytes is not None and self.frames % 10 == 0:
            written = sum(max(w.bytes, w.path.stat().st_size if w.path.exists() else 0) for w in self.writers)
            if self.quota_base + written >= self.quota.max_bytes:
                self._fail(f"recording stopped at {self.frames} frames: the folder reached the "
                           f"{self.quota.max_bytes / 1e6:g} MB limit (--snapshots-max-mb); the files are kept")

    def _take(self, result: Any, index: int | None, now: float) -> None:
        if self.layout is None:
            names = list(self.start_msg.panels) if self.start_msg.panels is not None else picture_panels(result)
            images = [_picture(result, n) for n in names]
            missing = [n for n, im in zip(names, images, strict=True) if im is None]
            if missing:
                raise RequestError(f"panel {missing[0]} is not on in the dashboard: turn it on, then record")
            columns = len(names) if self.start_msg.panels is not None else COLUMNS
            self.layout = Layout(names, images, self.start_msg.size, max(1, columns))
        if self.start_msg.every_frame:
            if index is not None and index == self.last_index:
                return  # the same input frame again (a selection change): one output frame per input frame
            self.last_index = index
            self.indices.append(index)
            self._write(self.layout.draw(result))
            return
        image = self.layout.draw(result)
        if self.t0 is None:
            self.t0 = now
        else:
            self._catch_up(now)
        self.prev = image

    def _catch_up(self, now: float) -> None:
        """Write the previous picture until the output clock reaches ``now`` (gaps cut to MAX_GAP_S)."""
        assert self.t0 is not None and self.prev is not None
        target = math.floor((now - self.t0) * self.rate)
        gap = target - self.frames
        limit = max(1, round(MAX_GAP_S * self.rate))
        if gap > limit:  # a pause: shorten it, and move the clock so later frames keep their pace
            self.t0 += (gap - limit) / self.rate
            target = self.frames + limit
        while self.frames < target and self.error is None:
            self._write(self.prev)

    def stop(self) -> dict:
        """Finish the queue, close the files; the summary for the ``recorded`` message (blocks).

        A frame the pipeline handed over before the stop is written: in "every frame" mode the
        writer may be several frames behind the screen (the frame on screen when stop was pressed
        is the last one), so the feeds still waiting for room in the queue complete first.
        """
        with self._feeding:
            self._accepting = False
            while self._inflight and self.error is None:
                self._feeding.wait(0.1)
        self._stopping.set()
        self._thread.join()
        now = time.monotonic()
        try:
            if not self.start_msg.every_frame and self.prev is not None and self.error is None:
                self._catch_up(now)
                if self.frames == 0:
                    self._write(self.prev)
        except Exception as exc:
            self._fail(f"recording stopped: {type(exc).__name__}: {str(exc)[:160]}")
        for writer in self.writers:
            try:
                writer.close()
            except Exception:
                log.warning("closing %s failed", writer.path, exc_info=True)
        files = []
        for path in self.paths:
            if path.exists():
                files.append({"name": path.name, "url": f"/recordings/{path.name}", "bytes": path.stat().st_size,
                              "format": path.suffix[1:]})
        layout = self.layout
        return {"name": self.name, "folder": str(self.paths[0].parent), "files": files, "frames": self.frames,
                "fps": round(self.rate, 4), "width": layout.width if layout else 0,
                "height": layout.height if layout else 0, "panels": layout.names if layout else [],
                "every_frame": self.start_msg.every_frame, "seconds": round(now - self.started, 2),
                "input_frames": _spans(self.indices) if self.start_msg.every_frame else None,
                "error": self.error}

    def describe(self) -> dict:
        layout = self.layout
        return {"active": True, "name": self.name, "frames": self.frames, "fps": round(self.rate, 4),
                "every_frame": self.start_msg.every_frame, "seconds": round(time.monotonic() - self.started, 1),
                "panels": layout.names if layout else list(self.start_msg.panels or []),
                "width": layout.width if layout else None, "height": layout.height if layout else None,
                "error": self.error}


class Recorder:
    """The pipeline's tap (``Pipeline.recorder``): keeps the newest result; feeds the recording.

    Args:
        folder: where recordings go (``None``: no recordings).
        player: the file/folder player (``None``: a live source).
        quota: the snapshot/recording disk quota.
        on_error: called (from a worker thread) with a one-line message when a recording stops by itself.
    """

    def __init__(self, folder: Path | None, player: Any | None, quota: Quota,
                 on_error: Callable[[str], None] = lambda message: None) -> None:
        self.folder = folder
        self.player = player
        self.quota = quota
        self.on_error = on_error
        self.active: Recording | None = None
        self._last: tuple[Any, int | None] | None = None
        self._lock = threading.Lock()
        self._restore_every: bool | None = None

    def offer(self, result: Any, where: dict | None) -> None:
        """Called by the pipeline's encoder thread with every result it publishes."""
        index = None if where is None else where.get("index")
        with self._lock:
            self._last = (result, index)
            active = self.active
        if active is not None:
            active.feed(result, index, time.monotonic())

    def start(self, msg: RecordStart) -> dict:
        """Start a recording (the frame on screen is its first frame); RequestError if one runs."""
        with self._lock:
            if self.active is not None:
                raise RequestError(f"already recording ({self.active.name}): stop it first")
        assert self.folder is not None
        self.quota.check("recording")
        rate = msg.fps
        if msg.every_frame:
            assert self.player is not None
            described = self.player.describe()
            rate = float(described.get("fps") or 0) or 1.0
            self._restore_every = bool(described.get("every_frame"))
            if not self._restore_every:
                self.player.set_speed(None, True)
        recording = Recording(self.folder, msg, rate, self.quota, self._stopped_by_itself)
        with self._lock:  # the frame on screen now is the first one; newer ones follow in order
            if self._last is not None:
                recording.feed(self._last[0], self._last[1], time.monotonic())
            self.active = recording
        return recording.describe()

    def _stopped_by_itself(self, message: str) -> None:
        self.on_error(message)

    def stop(self) -> dict:
        """Stop and close the running recording (blocks while the queue drains); RequestError if none."""
        with self._lock:
            recording, self.active = self.active, None
        if recording is None:
            raise RequestError("not recording: nothing to stop")
        if recording.start_msg.every_frame and self.player is not None and self._restore_every is False:
            self.player.set_speed(None, False)
        self._restore_every = None
        return recording.stop()

    def describe(self) -> dict:
        active = self.active
        return active.describe() if active is not None else {"active": False}

    def close(self) -> None:
        """Close a recording still running (the server stops): its files stay playable."""
        if self.active is not None:
            try:
                self.stop()
            except Exception:
                log.warning("closing the recording failed", exc_info=True)


def _spans(indices: list[int | None]) -> list[list[int]]:
    """Runs of consecutive input frames, ``[[first, last], ...]`` (``[[40, 49]]``: 40 to 49 in order)."""
    spans: list[list[int]] = []
    for i in indices:
        if i is None:
            continue
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return spans


def recording_file(root: Path | None, name: str) -> Path | None:
    """The recording ``name`` directly inside ``root`` (plain ``.mp4``/``.gif`` names only), or None."""
    if root is None or not _FILE.match(name) or ".." in name:
        return None
    path = root / name
    try:
        if path.is_symlink() or not path.is_file() or path.resolve().parent != root.resolve():
            return None
    except OSError:
        return None
    return path
