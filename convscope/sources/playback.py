"""Playback of files and folders: a frame-accurate player with seek, step, speed and replay.

A video file or a folder of images is not a live feed: the dashboard can show any of its frames
at any time. :class:`Player` offers the consumer side of :class:`~convscope.sources.Source`
(``latest``, ``info``, ``state``, ``dropped``, ``close``) so the dashboard's pipeline takes it
unchanged, plus the controls every viewer shares: play/pause, seek to a frame, step, speed
(0.25x-4x on the media clock) and *every frame* (no frame passed over: each is handed out once
the previous one was taken, as fast as the dashboard computes them).

Frames are decoded on demand in the consumer's thread: playing forward decodes in order; a seek
jumps to the keyframe before the wanted frame and decodes up to it. The frame list of a video
comes from its packets' timestamps, read once at open without decoding.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.error
import numpy as np

from convscope.errors import SourceError
from convscope.pixels import too_large
from convscope.sources.av_decoder import AvDecoder
from convscope.sources.decoder import as_rgb
from convscope.sources.images import SLIDE_SECONDS, list_images, load_image
from convscope.sources.masking import one_line
from convscope.sources.spec import parse_spec
from convscope.sources.types import Frame, SourceInfo, SourceState

log = logging.getLogger("convscope.sources")

MIN_SPEED = 0.25
MAX_SPEED = 4.0
_FORWARD_LIMIT = 48  # decode forward instead of seeking when the wanted frame is this close ahead
PLAYBACK_KINDS = ("file", "folder")


class VideoFrames:
    """Random access to the frames of a video file (PyAV), indexed by packet timestamps.

    Raises:
        SourceError: the file cannot be opened (as :class:`AvDecoder` says) or its packets carry
            no timestamps (then it can only be played in order, by the plain source).
    """

    def __init__(self, target: str, display: str) -> None:
        self._decoder = AvDecoder(target, display)
        self._display = display
        container, stream = self._decoder._container, self._decoder._stream
        self._container, self._stream = container, stream
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    raise SourceError(f"{display}: packets without timestamps, cannot seek")
                pts.append(int(packet.pts))
        except av.error.FFmpegError as exc:
            self._decoder.close()
            raise SourceError(f"reading {display} failed: {one_line(str(exc))}") from None
        if not pts:
            self._decoder.close()
            raise SourceError(f"no frames in {display}")
        pts.sort()
        self.pts = pts
        tb = float(stream.time_base) if stream.time_base else 1.0 / 90000
        self.times = [(p - pts[0]) * tb for p in pts]
        self._tb = tb
        self.fps = self._decoder.fps or (len(pts) / self.times[-1] if self.times[-1] > 0 else 25.0)
        self.error: str | None = None  # why the file ends early or is damaged, once known
        try:  # a truncated file: its packets stop well before the stated duration
            self._decoder._check_complete(pts[-1] * tb, 0)
        except SourceError as exc:
            self.error = str(exc)
        self.broken = 0
        self._frames: Iterator | None = None
        self._next = 0  # index of the frame the open iterator yields next
        self.paths: list[str | None] = [None] * len(pts)

    def __len__(self) -> int:
        return len(self.pts)

    def _decode(self) -> Iterator:
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.broken += 1
                    continue
                yield from decoded
        except av.error.EOFError:
            return

    def get(self, i: int) -> np.ndarray:
        """Frame ``i`` as RGB uint8."""
        target = self.pts[i]
        if self._frames is None or not 0 <= i - self._next < _FORWARD_LIMIT:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            self._frames = self._decode()
        last = None
        try:
            for frame in self._frames:
                if frame.pts is not None and frame.pts < target:
                    last = frame
                    continue
                self._next = i + 1
                return self._image(frame)
        except av.error.FFmpegError as exc:
            self._frames = None
            raise SourceError(f"reading {self._display} failed: {one_line(str(exc))}") from None
        self._frames = None  # the end came first: the frame before is the closest there is
        if self.broken and self.error is None:
            self.error = (f"{self._display} is damaged: {self.broken} broken packet(s) skipped "
                          "(the file is corrupt)")
        if last is None:
            raise SourceError(f"{self._display}: frame {i} cannot be decoded"
                              + (f" ({self.error})" if self.error else ""))
        return self._image(last)

    def _image(self, frame) -> np.ndarray:
        reason = too_large(frame.width, frame.height)
        if reason is not None:
            raise SourceError(f"{self._display}: {reason}")
        return as_rgb(frame.to_ndarray(format="rgb24"))

    def close(self) -> None:
        self._decoder.close()


class ImageFrames:
    """The images of a folder or glob, natural order, one per :data:`SLIDE_SECONDS` of media time."""

    def __init__(self, target: str, display: str) -> None:
        self.paths: list[str | None] = list(list_images(target, display))
        self.times = [i * SLIDE_SECONDS for i in range(len(self.paths))]
        self.fps = 1.0 / SLIDE_SECONDS
        self.error: str | None = None
        self.skipped: list[tuple[str, str]] = []
        self._display = display
        first = next((self._load(i) for i in range(len(self.paths))), None)
        if first is None:
            raise SourceError(f"no readable images in {display}")

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int) -> np.ndarray | None:
        path = self.paths[i]
        try:
            return load_image(path)
        except Exception as exc:  # PIL raises many types for broken files
            reason = one_line(str(exc)) or type(exc).__name__
            if (path, reason) not in self.skipped:
                self.skipped.append((path, reason))
                log.warning("skipping unreadable image %s: %s", path, reason)
            self.error = f"cannot read image {path}: {reason}"
            return None

    def get(self, i: int) -> np.ndarray:
        """Image ``i``; an unreadable one shows the next readable one (and is reported)."""
        n = len(self.paths)
        for k in range(n):
            image = self._load((i + k) % n)
            if image is not None:
                return image
        raise SourceError(f"no readable images in {self._display}")

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class PlaybackState:
    """What every viewer's timeline shows (the ``playback`` message, see :meth:`Player.describe`)."""

    playing: bool
    ended: bool
    position: int
    count: int
    speed: float
    every_frame: bool


class Player:
    """A file or folder played on a media clock that viewers control; see the module docstring.

    Args:
        frames: a :class:`VideoFrames` or :class:`ImageFrames`.
        kind: ``file`` or ``folder``.
        display: the spec, secrets masked.
        loop: start again at the end instead of stopping there.
        autoplay: play at once; else wait on the first frame until :meth:`viewer_arrived`.
    """

    seekable = True
    live = False

    def __init__(self, frames, kind: str, display: str, *, loop: bool = False, autoplay: bool = False) -> None:
        self._frames = frames
        self._times = frames.times
        self._count = len(frames)
        self._kind = kind
        self._display = display
        self._loop = loop
        self._cond = threading.Condition()
        self._decode_lock = threading.Lock()
        self._playing = False
        self._started = False
        self._ended = False
        self._closed = False
        self._speed = 1.0
        self._every = False
        self._pos = 0  # the frame the clock (or the last seek/step) is on
        self._handed = -1  # the frame handed out last
        self._anchor = (0.0, 0.0)  # (monotonic time, media time) the clock runs from
        self.passed = 0  # frames the clock passed over because the consumer was busy (not "skipped")
        self.version = 0  # bumped on every change a viewer should see
        image = frames.get(0)
        h, w = image.shape[:2]
        self._first = image
        self.skipped = getattr(frames, "skipped", [])
        self.reconnects = 0
        self._info = SourceInfo(kind, int(w), int(h), float(frames.fps), False, display)  # type: ignore[arg-type]
        if autoplay:
            self.viewer_arrived()

    # ----------------------------------------------------------------- Source interface
    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def state(self) -> SourceState:
        with self._cond:
            self._advance()
            error = self._frames.error
            return SourceState("ended" if self._ended else "playing", 0, error)

    @property
    def dropped(self) -> int:
        return 0  # a file is never late: frames the clock passes over are counted in `passed`

    @property
    def every_frame(self) -> bool:
        return self._every

    @property
    def paused(self) -> bool:
        return not self._playing

    def latest(self, timeout: float = 0.0) -> Frame | None:
        """The frame due now if it was not handed out yet; waits at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                self._advance()
                if self._pos != self._handed:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, self._until_next()))
            index = self._pos
            if self._handed >= 0 and self._playing and not self._every and index > self._handed + 1:
                self.passed += index - self._handed - 1
            self._handed = index
        try:
            with self._decode_lock:
                image = self._first if index == 0 and self._first is not None else self._frames.get(index)
        except SourceError as exc:
            self._cut_at(index, str(exc))
            return None
        return Frame(image, index, self._times[index], self._frames.paths[index])

    def _cut_at(self, index: int, error: str) -> None:
        """Frame ``index`` and the ones after it cannot be decoded (a truncated file's last packets):
        the file ends before it, with the reason as its error."""
        with self._cond:
            if self._frames.error is None:
                self._frames.error = error
            if index <= 0 or self._closed:
                return
            self._count = min(self._count, index)
            self._times = self._times[: self._count]
            self._pos = self._handed = self._count - 1
            self._playing = False
            self._ended = True
            log.warning("source %s ended: %s", self._display, self._frames.error)
            self._changed()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        with self._decode_lock:
            self._frames.close()

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- controls
    def viewer_arrived(self) -> None:
        """Start playing the first time anyone watches (a file must not play to an empty room)."""
        with self._cond:
            if self._started:
                return
            self._started = True
        self.set_playing(True)

    def set_playing(self, playing: bool) -> None:
        """Play or pause; playing an ended file replays it from the start."""
        with self._cond:
            self._advance()
            if playing and self._ended:
                self._pos, self._ended = 0, False
            self._started = self._started or playing
            self._playing = playing
            self._reanchor()
            self._changed()

    def seek(self, index: int) -> None:
        """Show frame ``index`` (the clock keeps running from there if playing)."""
        if not 0 <= index < self._count:
            raise SourceError(f"frame {index} is out of range (0..{self._count - 1})")
        with self._cond:
            self._pos = index
            self._ended = False
            self._reanchor()
            self._changed()

    def step(self, by: int) -> None:
        """Pause and move ``by`` frames (clamped to the first and last frame)."""
        with self._cond:
            self._advance()
            self._playing = False
            self._pos = min(self._count - 1, max(0, self._pos + by))
            self._ended = False
            self._reanchor()
            self._changed()

    def set_speed(self, speed: float | None = None, every_frame: bool | None = None) -> None:
        with self._cond:
            self._advance()
            if speed is not None:
                if not MIN_SPEED <= speed <= MAX_SPEED:
                    raise SourceError(f"speed must be between {MIN_SPEED:g} and {MAX_SPEED:g}, got {speed:g}")
                self._speed = float(speed)
            if every_frame is not None:
                self._every = bool(every_frame)
            self._reanchor()
            self._changed()

    def describe(self) -> dict:
        """The ``playback`` message: what the timeline, the play button and the speed menu show."""
        with self._cond:
            self._advance()
            return {
                "playing": self._playing, "ended": self._ended, "position": self._pos,
                "count": self._count, "time": round(self._times[self._pos], 4),
                "duration": round(self._times[-1] + 1.0 / max(self._info.fps, 1e-6), 4),
                "fps": self._info.fps, "speed": self._speed, "every_frame": self._every,
                "loop": bool(self._loop), "passed": self.passed,
                "min_speed": MIN_SPEED, "max_speed": MAX_SPEED,
            }

    # ----------------------------------------------------------------- the clock (under the lock)
    def _changed(self) -> None:
        self.version += 1
        self._cond.notify_all()

    def _reanchor(self) -> None:
        self._anchor = (time.monotonic(), self._times[self._pos])

    def _period(self) -> float:
        return 1.0 / self._info.fps if self._info.fps > 0 else 1.0 / 25.0

    def _advance(self) -> None:
        """Move :attr:`_pos` to the frame due now; handle the end (stop or loop)."""
        if not self._playing or self._closed:
            return
        if self._every:
            if self._handed != self._pos:
                return  # the current frame was not taken yet: nothing is passed over
            if self._pos + 1 < self._count:
                self._pos += 1
                self.version += 1
            else:
                self._at_end()
            return
        wall, media = self._anchor
        now = media + (time.monotonic() - wall) * self._speed
        end = self._times[-1] + self._period()
        if now >= end:
            if self._handed != self._count - 1:  # show the last frame before stopping or looping
                if self._pos != self._count - 1:
                    self._pos = self._count - 1
                    self.version += 1
                return
            self._at_end()
            return
        due = max(0, bisect.bisect_right(self._times, now + 1e-6) - 1)  # 1e-6: float timestamps
        if due > self._pos:
            self._pos = due
            self.version += 1

    def _at_end(self) -> None:
        if self._loop:
            self._pos = 0
            self._reanchor()
        else:
            self._playing = False
            self._ended = True
            if self._frames.error:
                log.warning("source %s ended: %s", self._display, self._frames.error)
        self.version += 1

    def _until_next(self) -> float:
        """Seconds until the clock reaches the next frame (a bound for waiting)."""
        if not self._playing:
            return 0.25
        if self._every:
            return 0.05
        wall, media = self._anchor
        nxt = self._times[self._pos + 1] if self._pos + 1 < self._count else self._times[-1] + self._period()
        wait = (nxt - media) / self._speed - (time.monotonic() - wall)
        return min(0.25, max(0.001, wait))


def open_playback(spec: str, *, loop: bool | None = None, autoplay: bool = False) -> Player | None:
    """A :class:`Player` for a file or folder spec; ``None`` for other sources (and files that
    cannot seek), which the caller opens with :func:`~convscope.sources.open_source`.

    Raises:
        SourceError: the file or folder cannot be read (the same one line ``open_source`` gives).
    """
    parsed = parse_spec(spec)
    if parsed.kind not in PLAYBACK_KINDS:
        return None
    if parsed.kind == "file":
        try:
            frames = VideoFrames(parsed.target, parsed.display)
        except SourceError as exc:
            if "cannot seek" in str(exc):
                return None
            raise
    else:
        frames = ImageFrames(parsed.target, parsed.display)
    try:
        return Player(frames, parsed.kind, parsed.display, loop=bool(loop), autoplay=autoplay)
    except BaseException:
        frames.close()
        raise
