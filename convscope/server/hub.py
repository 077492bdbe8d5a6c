"""Fan-out to viewers: every viewer has a latest-value slot, never a queue.

The pipeline's encoder thread publishes a frame through :class:`ThreadHandoff` (at most one
``call_soon_threadsafe`` pending) and returns at once. Each viewer's sender task wakes, takes the newest frame and sends it, at most
:data:`FRAMES_IN_FLIGHT` frames ahead of the viewer's acknowledgements. A viewer that reads
slowly (or never) therefore holds at most that many frames in the network buffers, and skips the
frames published meanwhile; the others are not slowed. Control messages (``state``, ``status``,
``hello``) are latest-value too; error replies keep the last few.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable

from convscope.server.encode import EncodedFrame

#: Frames sent to a viewer and not yet acknowledged. Two keep the pipe busy while one is drawn.
FRAMES_IN_FLIGHT = 2
MAX_ERRORS = 8


class Viewer:
    """One WebSocket's sending side: its slots and counters."""

    def __init__(self, window: int = FRAMES_IN_FLIGHT) -> None:
        self.window = window
        self.wake = asyncio.Event()
        self.control: dict[str, str] = {}  # message type -> newest JSON text
        self.errors: deque[str] = deque(maxlen=MAX_ERRORS)
        self.last_seq = -1  # newest frame sent
        self.acked = -1  # newest frame acknowledged
        self.in_flight: deque[int] = deque()
        self.frames_sent = 0
        self.bytes_sent = 0
        self.closed = False

    def ack(self, seq: int) -> None:
        """Frame ``seq`` (and every older one) arrived."""
        self.acked = max(self.acked, seq)
        while self.in_flight and self.in_flight[0] <= seq:
            self.in_flight.popleft()
        self.wake.set()

    def push_control(self, kind: str, text: str) -> None:
        self.control[kind] = text
        self.wake.set()

    def push_error(self, text: str) -> None:
        self.errors.append(text)
        self.wake.set()


class Hub:
    """The newest frame and the set of viewers; all methods run on the event loop."""

    def __init__(self, window: int = FRAMES_IN_FLIGHT) -> None:
        self.window = window
        self.latest: EncodedFrame | None = None
        self._latest_text = ""
        self._latest_payload = b""
        self.viewers: set[Viewer] = set()
        self.published = 0

    def publish(self, frame: EncodedFrame) -> None:
        """Replace the newest frame and wake every viewer."""
        self.latest = frame
        self._latest_text = json.dumps(frame.meta, separators=(",", ":"))
        self._latest_payload = frame.packed()
        self.published += 1
        for viewer in self.viewers:
            viewer.wake.set()

    def broadcast(self, kind: str, message: dict) -> None:
        """Send a latest-value control message (``state``, ``status`` ...) to every viewer."""
        text = json.dumps({"type": kind, **message}, separators=(",", ":"))
        for viewer in self.viewers:
            viewer.push_control(kind, text)

    def add(self) -> Viewer:
        viewer = Viewer(self.window)
        self.viewers.add(viewer)
        return viewer

    def remove(self, viewer: Viewer) -> None:
        viewer.closed = True
        viewer.wake.set()
        self.viewers.discard(viewer)

    def close(self) -> None:
        """Wake every sender so it can see it should stop."""
        for viewer in list(self.viewers):
            self.remove(viewer)

    async def serve(
        self,
        viewer: Viewer,
        send_text: Callable[[str], Awaitable[None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """Send to ``viewer`` until it is removed: control messages first, then the newest frame."""
        while not viewer.closed:
            await viewer.wake.wait()
            viewer.wake.clear()
            while viewer.control or viewer.errors:
                if viewer.errors:
                    await send_text(viewer.errors.popleft())
                else:
                    kind = next(iter(viewer.control))
                    await send_text(viewer.control.pop(kind))
            frame, text, payload = self.latest, self._latest_text, self._latest_payload
            if viewer.closed or frame is None or frame.seq <= viewer.last_seq:
                continue
            if len(viewer.in_flight) >= viewer.window:
                continue  # woken again by an ack
            viewer.in_flight.append(frame.seq)
            viewer.last_seq = frame.seq
            viewer.frames_sent += 1
            viewer.bytes_sent += len(payload)
            await send_text(text)
            await send_bytes(payload)
            if self.latest is not None and self.latest.seq > viewer.last_seq:
                viewer.wake.set()  # a newer frame came while we were sending


class ThreadHandoff:
    """Hands frames from the engine thread to the loop with at most one callback pending.

    ``loop.call_soon_threadsafe`` per frame would queue frames if the loop ever stalled; here a
    newer frame replaces a pending one, so even then only one frame waits.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, hub: Hub) -> None:
        self._loop = loop
        self._hub = hub
        self._lock = threading.Lock()
        self._frame: EncodedFrame | None = None

    def __call__(self, frame: EncodedFrame) -> None:
        with self._lock:
            pending = self._frame is not None
            self._frame = frame
        if not pending:
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: we are shutting down
                pass

    def _deliver(self) -> None:
        with self._lock:
            frame, self._frame = self._frame, None
        if frame is not None:
            self._hub.publish(frame)
