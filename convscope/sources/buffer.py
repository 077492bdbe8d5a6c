"""The hand-over between a source's reader thread and whoever consumes its frames.

Two policies: *latest* keeps only the newest frame (live sources and real-time playback, so
latency never piles up; every overwritten frame counts as dropped), *queue* keeps every frame
and makes the reader wait when the consumer falls behind (benchmarks and the CLI).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from convscope.sources.types import Frame


class FrameBuffer:
    """A thread-safe frame slot (``latest_only``) or bounded queue.

    Args:
        latest_only: keep only the newest frame instead of queueing.
        capacity: queue length before :meth:`put` waits (ignored when ``latest_only``).
    """

    def __init__(self, latest_only: bool, capacity: int = 4) -> None:
        self._latest_only = latest_only
        self._capacity = 1 if latest_only else max(1, capacity)
        self._frames: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._finished = False
        self.dropped = 0

    @property
    def finished(self) -> bool:
        """No frame will be added any more and none is waiting."""
        with self._cond:
            return self._finished and not self._frames

    def put(self, frame: Frame, stop: threading.Event) -> None:
        """Add a frame; in queue mode wait for room until ``stop`` is set. Ignored after :meth:`finish`."""
        with self._cond:
            if self._finished:
                return
            if self._latest_only:
                self.dropped += len(self._frames)
                self._frames.clear()
            else:
                while len(self._frames) >= self._capacity and not stop.is_set() and not self._finished:
                    self._cond.wait(0.1)
                if stop.is_set() or self._finished:
                    return
            self._frames.append(frame)
            self._cond.notify_all()

    def finish(self) -> None:
        """Mark the end: consumers get what is left, then nothing."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def discard(self) -> None:
        """Drop whatever is waiting (on close); not counted as dropped."""
        with self._cond:
            self._frames.clear()
            self._cond.notify_all()

    def next(self, timeout: float | None) -> Frame | None:
        """The oldest waiting frame, or ``None`` after ``timeout`` seconds or at the end."""
        return self._take(timeout, newest=False)

    def newest(self, timeout: float | None) -> Frame | None:
        """The newest waiting frame (older ones count as dropped), or ``None`` as in :meth:`next`."""
        return self._take(timeout, newest=True)

    def _take(self, timeout: float | None, newest: bool) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._frames:
                if self._finished:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if newest:
                self.dropped += len(self._frames) - 1
                frame = self._frames[-1]
                self._frames.clear()
            else:
                frame = self._frames.popleft()
            self._cond.notify_all()
            return frame
