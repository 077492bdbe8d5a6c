"""A running source: one reader thread, pacing, looping, reconnects, and the consumer side.

The reader thread opens the input, decodes, and hands frames to a :class:`FrameBuffer`. Live
inputs and real-time playback keep only the newest frame (a slow consumer sees drops, never
latency); ``realtime=False`` queues every frame. When a live input fails or ends, the thread
reopens it with exponential backoff and reports ``reconnecting`` in :attr:`Source.state`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from convscope.errors import SourceError
from convscope.sources.buffer import FrameBuffer
from convscope.sources.decoder import Decoder
from convscope.sources.masking import one_line
from convscope.sources.types import Frame, SourceInfo, SourceKind, SourceState

log = logging.getLogger("convscope.sources")

BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
_JUMP = 1.0  # a real-time clock further off than this is reset, not chased


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based): 0.5, 1, 2, 4, 8, 10, 10 ..."""
    return min(BACKOFF_MAX, BACKOFF_START * 2.0 ** max(0, attempt - 1))


class Source:
    """Frames from one input; iterate it, or poll :meth:`latest` from a UI loop.

    Build it with :func:`convscope.sources.open_source`, which waits until the first frame has
    arrived (or the input failed) so that :attr:`info` is known.

    Args:
        kind: the source family, for :attr:`info`.
        display: the spec with secrets masked.
        opener: opens the input afresh (also on every reconnect); raises ``SourceError``.
        realtime: pace non-live input at its own rate and keep only the newest frame.
        loop: start again at the end (files, images, demo) or reconnect after the end (live).
        max_reconnects: give up after this many failed reconnects in a row (``None``: never).
        skipped: the list the reader appends ``(path, reason)`` of unreadable images to.
        read_timeout: a live input that delivers no frame for this many seconds counts as lost
            at once: :attr:`state` turns ``reconnecting`` and frames the stalled reader still
            hands out afterwards (FFmpeg's buffered ones) are dropped, not shown as live.
    """

    def __init__(
        self,
        kind: SourceKind,
        display: str,
        opener: Callable[[], Decoder],
        *,
        realtime: bool,
        loop: bool | None,
        max_reconnects: int | None,
        skipped: list[tuple[str, str]] | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self._kind = kind
        self._display = display
        self._opener = opener
        self._realtime = realtime
        self._loop = loop
        self._max_reconnects = max_reconnects
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._state = SourceState()
        self._info: SourceInfo | None = None
        self._open_error: SourceError | None = None
        self._buffer: FrameBuffer | None = None
        self._live = False
        self._t0 = 0.0
        self._index = 0  # frames handed to the buffer so far
        self._attempt = 0  # failed reconnects in a row
        self._offset = 0.0  # media time added on each loop of a file
        self._last_ts = 0.0
        self._period = 1.0 / 30.0
        self.reconnects = 0
        self._read_timeout = read_timeout
        self._last_frame_at = 0.0  # monotonic time of the newest frame (live inputs)
        self._pass = 0  # which open of the input the reader is on
        self._stale_pass = -1  # the pass the watchdog declared lost
        self.skipped: list[tuple[str, str]] = skipped if skipped is not None else []
        self._thread = threading.Thread(target=self._run, name=f"convscope-source-{kind}", daemon=True)

    # ----------------------------------------------------------------- public API

    @property
    def info(self) -> SourceInfo:
        """Kind, size, nominal fps, live or not, and the masked spec."""
        if self._info is None:
            raise SourceError(f"source {self._display} is not open")
        return self._info

    @property
    def state(self) -> SourceState:
        """``playing``, ``reconnecting`` (with attempt and last error) or ``ended``."""
        self._watch()
        with self._lock:
            return self._state

    @property
    def dropped(self) -> int:
        """Frames decoded but never handed out because a newer one replaced them."""
        return self._buffer.dropped if self._buffer is not None else 0

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame in order; ``None`` after ``timeout`` seconds or once the source ended."""
        if self._buffer is None or self._stop.is_set():
            return None
        return self._buffer.next(timeout)

    def latest(self, timeout: float = 0.0) -> Frame | None:
        """The newest frame not handed out yet, waiting at most ``timeout`` seconds for one.

        Older waiting frames are skipped (counted in :attr:`dropped`). Returns ``None`` when no
        new frame came in time or the source ended; never blocks longer than ``timeout``.
        """
        if self._buffer is None or self._stop.is_set():
            return None
        self._watch()
        return self._buffer.newest(timeout)

    def __iter__(self) -> Iterator[Frame]:
        while not self._stop.is_set():
            frame = self.read(0.25)
            if frame is not None:
                yield frame
            elif self._buffer is None or self._buffer.finished:
                return

    def close(self) -> None:
        """Stop the reader thread and release the input; idempotent and quick.

        A reader blocked inside FFmpeg notices within its read timeout; it is a daemon thread
        and holds nothing the caller needs, so we wait only briefly for it.
        """
        self._stop.set()
        if self._buffer is not None:
            self._buffer.discard()
            self._buffer.finish()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=0.5)
        with self._lock:
            if self._state.status != "ended":
                self._state = SourceState("ended", 0, self._state.last_error)

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Source {self._kind} {self._display} {self.state.status}>"

    # ----------------------------------------------------------------- opening

    def start(self, wait: float) -> Source:
        """Start the reader and wait up to ``wait`` seconds for the first frame.

        Raises:
            SourceError: the input failed to open, gave no frame, or did not answer in time.
        """
        self._thread.start()
        if not self._ready.wait(wait):
            self.close()
            raise SourceError(f"cannot open {self._display}: no frame within {wait:g} s (timed out)")
        if self._open_error is not None:
            self.close()
            raise self._open_error
        return self

    # ----------------------------------------------------------------- reader thread

    def _run(self) -> None:
        try:
            self._read_all()
        except SourceError as exc:
            self._end(str(exc), quiet=self._open_error is not None)  # open errors are raised instead
        except Exception as exc:  # a bug, but never a silent dead thread
            log.exception("source %s failed", self._display)
            self._end(f"internal error: {one_line(str(exc)) or type(exc).__name__}")
        finally:
            if self._buffer is not None:
                self._buffer.finish()
            self._ready.set()

    def _read_all(self) -> None:
        first = True
        while not self._stop.is_set():
            got_frame, error = self._play_once(first)
            if self._stop.is_set():
                return
            if first and not got_frame:
                raise self._fail_open(SourceError(error or f"no frames in {self._display}"))
            first = False
            if not self._continue_after(got_frame, error):
                return

    def _play_once(self, first: bool) -> tuple[bool, str | None]:
        """Open the input and hand out its frames until it ends; return (got a frame, error)."""
        with self._lock:
            self._pass += 1
            this_pass = self._pass
        try:
            decoder = self._opener()
        except SourceError as exc:
            if first:
                raise self._fail_open(exc) from None
            return False, str(exc)
        in_pass = 0
        try:
            if first:
                self._configure(decoder)
            self._period = 1.0 / decoder.fps if decoder.fps > 0 else 1.0 / 30.0
            clock: float | None = None
            for raw in decoder.frames():
                if self._stop.is_set():
                    break
                if self._stale_pass == this_pass:  # declared lost meanwhile: this frame is stale
                    return in_pass > 0, self._lost_message()
                if in_pass == 0:
                    self._on_first_frame(raw.image, decoder, first)
                if self._live:
                    ts = time.monotonic() - self._t0
                else:
                    ts = self._offset + (raw.timestamp if raw.timestamp is not None else in_pass * self._period)
                    self._last_ts = ts
                    if self._realtime:
                        clock = self._pace(clock, ts)
                self._buffer.put(Frame(raw.image, self._index, ts, raw.path), self._stop)
                self._last_frame_at = time.monotonic()
                self._index += 1
                in_pass += 1
                self._ready.set()
        except SourceError as exc:
            return in_pass > 0, str(exc)
        finally:
            decoder.close()
        return in_pass > 0, None

    def _on_first_frame(self, image: np.ndarray, decoder: Decoder, first: bool) -> None:
        if first:
            h, w = image.shape[:2]
            self._info = SourceInfo(self._kind, int(w), int(h), float(decoder.fps), self._live, self._display)
        with self._lock:
            self._last_frame_at = time.monotonic()
        self._set_state(SourceState("playing"))
        if self._attempt:
            self.reconnects += 1
            log.info("source %s is back after %d attempt(s)", self._display, self._attempt)
        self._attempt = 0

    def _continue_after(self, got_frame: bool, error: str | None) -> bool:
        """The input ended: loop, reconnect after a backoff, or end. Returns whether to go on."""
        if not self._live:
            if error is not None:
                raise SourceError(error)
            if not self._loop or not got_frame:
                self._end(None)
                return False
            self._offset = self._last_ts + self._period  # timestamps keep increasing across loops
            return True
        if error is None and not self._loop:
            self._end(None)
            return False
        self._attempt += 1
        reason = error or "the stream ended"
        if self._max_reconnects is not None and self._attempt > self._max_reconnects:
            self._end(f"{reason}; gave up after {self._max_reconnects} reconnect(s)")
            return False
        delay = backoff_delay(self._attempt)
        log.warning("source %s: %s; reconnecting in %.1f s (attempt %d)", self._display, reason, delay, self._attempt)
        self._set_state(SourceState("reconnecting", self._attempt, reason))
        return not self._stop.wait(delay)

    def _configure(self, decoder: Decoder) -> None:
        """Choose the buffer policy once the first open tells whether the input is live."""
        self._live = bool(decoder.live)
        if self._loop is None:
            self._loop = self._live or self._kind == "demo"
        self._buffer = FrameBuffer(latest_only=self._live or self._realtime)
        self._t0 = time.monotonic()
        self._last_frame_at = self._t0

    def _pace(self, clock: float | None, ts: float) -> float:
        """Sleep until media time ``ts`` is due on the wall clock; return the (maybe reset) clock."""
        now = time.monotonic()
        if clock is None:
            return now - ts
        delay = clock + ts - now
        if delay > _JUMP or delay < -_JUMP:  # a timestamp jump, or far behind: restart the clock
            return now - ts
        if delay > 0:
            self._stop.wait(delay)
        return clock

    def _lost_message(self) -> str:
        return f"no frame from {self._display} within {self._read_timeout:g} s (timed out)"

    def _watch(self) -> None:
        """Declare a live input lost once it has delivered nothing for the read timeout.

        The reader may be stuck inside FFmpeg for longer (an RTSP demuxer waits out its own
        timeout once more before it gives up), so the state says so now; whatever that reader
        still delivers from this connection is dropped, and it reconnects when it returns.
        """
        if not self._live or self._read_timeout is None or self._stop.is_set():
            return
        with self._lock:
            if self._state.status != "playing" or self._stale_pass == self._pass:
                return
            if time.monotonic() - self._last_frame_at <= self._read_timeout:
                return
            self._stale_pass = self._pass
            self._state = SourceState("reconnecting", self._attempt + 1, self._lost_message())
        if self._buffer is not None:
            self._buffer.discard()
        log.warning("source %s: %s; reconnecting", self._display, self._lost_message())

    def _fail_open(self, exc: SourceError) -> SourceError:
        self._open_error = exc
        return exc

    def _set_state(self, state: SourceState) -> None:
        with self._lock:
            self._state = state

    def _end(self, error: str | None, quiet: bool = False) -> None:
        with self._lock:
            self._state = SourceState("ended", 0, error if error is not None else self._state.last_error)
        if error and not quiet:
            log.warning("source %s ended: %s", self._display, error)
