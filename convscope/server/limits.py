"""Transport-level limits of ``convscope live``: connections, handshakes, message sizes, stalls, stop.

uvicorn on its own keeps a TCP connection that never sends a request line open forever, buffers
WebSocket messages up to 16 MiB, keeps a viewer whose socket stopped draining for as long as the
peer keeps the connection, and re-raises SIGTERM after shutting down (exit 143, nothing closed).
This module closes those gaps with small subclasses of uvicorn's own classes (its h11 and
websockets-sansio protocols, uvicorn 0.35 or later):

- :class:`GuardedH11Protocol`: at most :attr:`Limits.max_connections` open connections. A new
  connection beyond the cap first evicts the oldest connection that has not finished sending its
  request headers (an idle or slow-loris socket), so they can never lock viewers out; if every
  connection is a real one, the new connection gets a ``503`` and is closed at once. A connection
  must finish its request headers within :attr:`Limits.handshake_timeout` seconds.
- :class:`GuardedWSProtocol`: a viewer whose socket accepts no data for
  :attr:`Limits.stall_timeout` seconds (it acknowledges frames but never reads, or stopped
  reading) is dropped; a keepalive ping that gets no answer aborts the connection instead of
  waiting for a write buffer that will never drain. The message size limit is enforced by the
  WebSocket parser from the frame header, so an oversize message is never buffered.
- :class:`LiveServer`: SIGINT and SIGTERM both stop cleanly (close frames to every viewer,
  bounded wait, then abort), accept errors such as "Too many open files" are logged as one line
  per interval, never as a traceback per try.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from convscope.server.protocol import MAX_MESSAGE_BYTES

log = logging.getLogger("convscope.server")

#: Connections asyncio accepts in one go before any of them is looked at (the listen backlog);
#: uvicorn's 2048 would let one burst of connects take 2048 descriptors past the cap.
ACCEPT_BATCH = 64
#: File descriptors kept free for everything that is not a counted connection (model files, the
#: source, the listening socket, one accept batch ...) when the cap is fitted to the fd limit.
FD_RESERVE = 64 + ACCEPT_BATCH
#: Seconds a refused connection stays half-open so that its 503 arrives, and how many may.
REFUSED_LINGER = 0.5
MAX_LINGERING = 32
#: At most one line per this many seconds for each kind of repeated transport event.
LOG_EVERY = 10.0
_BODY_503 = b"convscope: too many connections, try again later\n"
_RESPONSE_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: " + str(len(_BODY_503)).encode() + b"\r\n\r\n" + _BODY_503
)


@dataclass(frozen=True)
class Limits:
    """What one ``convscope live`` server allows.

    Attributes:
        max_connections: open TCP connections (viewers, page loads, sockets still handshaking).
        handshake_timeout: seconds a connection may take to send its complete request headers.
        stall_timeout: seconds a viewer's socket may refuse data before the viewer is dropped.
        max_message_bytes: largest WebSocket message a page may send (the protocol's limit).
        shutdown_grace: seconds viewers get to answer the close frame on shutdown.
        ping_interval: seconds between WebSocket keepalive pings (and the wait for the answer).
    """

    max_connections: int = 200
    handshake_timeout: float = 10.0
    stall_timeout: float = 20.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    shutdown_grace: float = 0.3
    ping_interval: float = 20.0


class RateLimitedLog:
    """Logs an event at most once per ``every`` seconds, with how often it happened meanwhile."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()
        self.total: dict[str, int] = {}

    def __call__(self, key: str, message: str) -> bool:
        """Count one ``key`` event; log ``message`` if the interval has passed. True if logged."""
        now = time.monotonic()
        with self._lock:
            self._count[key] = self._count.get(key, 0) + 1
            self.total[key] = self.total.get(key, 0) + 1
            last = self._last.get(key)
            if last is not None and now - last < self.every:
                return False
            count, self._count[key] = self._count[key], 0
            self._last[key] = now
        suffix = f" ({count} times in the last {self.every:g} s)" if count > 1 else ""
        log.warning("%s%s", message, suffix)
        return True


class Tracker:
    """Shared by every connection of one server: who is still handshaking, and the counters."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.pending: dict[Any, None] = {}  # connections without complete request headers, oldest first
        self.note = RateLimitedLog()
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self.stalled = 0
        self.lingering = 0  # refused connections still open for their 503 to arrive

    def oldest_pending(self) -> Any | None:
        return next(iter(self.pending), None)


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; return (soft, hard) afterwards."""
    try:
        import resource
    except ImportError:  # not on Unix
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def fit_to_fd_limit(max_connections: int, soft_limit: int) -> int:
    """The connection cap that leaves :data:`FD_RESERVE` descriptors free (at least 8)."""
    if soft_limit <= 0:
        return max_connections
    return max(8, min(max_connections, soft_limit - FD_RESERVE))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a connection cap and a request-header deadline."""

    tracker: Tracker  # set on the subclass :func:`protocol_classes` makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        tracker = self.tracker
        if len(self.connections) >= tracker.limits.max_connections:
            victim = tracker.oldest_pending()
            if victim is not None:
                tracker.pending.pop(victim, None)
                tracker.evicted += 1
                victim._drop()
                tracker.note("evicted", f"connection cap ({tracker.limits.max_connections}) reached: "
                             "closed the oldest connection that had not sent its request")
            else:
                self._refuse(transport)  # type: ignore[arg-type]
                return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_request()

    def _refuse(self, transport: asyncio.Transport) -> None:
        """Answer 503 and close. The request that may already be on its way is read and dropped
        for a moment (closing on unread data would reset the connection and lose the 503)."""
        tracker = self.tracker
        self._refused = True
        tracker.refused += 1
        tracker.note("refused", f"connection cap ({tracker.limits.max_connections}) reached: "
                     "refused a new connection (503); raise it with --max-connections")
        self.transport = transport
        transport.write(_RESPONSE_503)
        if tracker.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        tracker.lingering += 1
        self._deadline = self.loop.call_later(REFUSED_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is None and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._await_request()  # the next request of a kept-alive connection has begun
        super().data_received(data)
        upgraded = self.transport.get_protocol() is not self
        if upgraded or self.conn.their_state is not h11.IDLE:
            self._request_arrived()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
                self.tracker.lingering -= 1
            return
        self._request_arrived()
        super().connection_lost(exc)

    def _await_request(self) -> None:
        self.tracker.pending[self] = None
        self._deadline = self.loop.call_later(self.tracker.limits.handshake_timeout, self._too_slow)

    def _request_arrived(self) -> None:
        self.tracker.pending.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self.tracker.pending.pop(self, None)
        self.tracker.timed_out += 1
        self._drop()

    def _drop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.transport is not None and not self._refused:
            self.transport.abort()


class GuardedWSProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol that drops viewers whose socket stopped accepting data."""

    tracker: Tracker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stall: asyncio.TimerHandle | None = None
        self.close_timeout = min(getattr(self, "close_timeout", 10.0), self.tracker.limits.stall_timeout)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.tracker.limits.stall_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_stall()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall()
        super().connection_lost(exc)

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()  # sends a close frame and closes, which waits for the buffer to drain
        self.transport.abort()  # ... that will not drain: the peer stopped reading

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        if self.transport.is_closing() and self.disconnected:
            return
        self.tracker.stalled += 1
        self.tracker.note("stalled", f"dropped a viewer that accepted no data for "
                          f"{self.tracker.limits.stall_timeout:g} s")
        self.transport.abort()


def protocol_classes(tracker: Tracker) -> tuple[type[GuardedH11Protocol], type[GuardedWSProtocol]]:
    """The two protocol classes of one server, bound to its ``tracker``."""
    http = type("ConvscopeHTTP", (GuardedH11Protocol,), {"tracker": tracker})
    ws = type("ConvscopeWS", (GuardedWSProtocol,), {"tracker": tracker})
    return http, ws


def make_config(app: Any, limits: Limits, tracker: Tracker | None = None, **kwargs: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` with ``limits`` in force (other options as ``kwargs``)."""
    tracker = tracker or Tracker(limits)
    http, ws = protocol_classes(tracker)
    options: dict[str, Any] = {
        "log_level": "warning", "lifespan": "on", "access_log": False,
        # No permessage-deflate: JPEG/PNG do not compress, and deflating ~250 KB a frame cost the
        # event loop ~12 ms of CPU per frame and viewer (0.3 ms without).
        "ws_per_message_deflate": False,
    }
    options.update(kwargs)
    config = uvicorn.Config(
        app, http=http, ws=ws, ws_max_size=limits.max_message_bytes,
        ws_ping_interval=limits.ping_interval, ws_ping_timeout=limits.ping_interval,
        timeout_keep_alive=5, backlog=ACCEPT_BATCH, **options,
    )
    config.convscope_tracker = tracker  # type: ignore[attr-defined]
    return config


_ACCEPT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class LiveServer(uvicorn.Server):
    """``uvicorn.Server`` that stops the same way on SIGINT and SIGTERM, quickly, and logs quietly.

    Attributes:
        stop_signal: the signal that stopped it, or ``None``.
    """

    def __init__(self, config: uvicorn.Config, limits: Limits) -> None:
        super().__init__(config)
        self.limits = limits
        self.stop_signal: int | None = None
        self.note: RateLimitedLog = getattr(config, "convscope_tracker", Tracker(limits)).note

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Like uvicorn's, but the signal is not raised again afterwards: stopping is the normal end."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.stop_signal is None:
            self.stop_signal = sig
        super().handle_exit(sig, frame)
        self._captured_signals.clear()

    async def startup(self, sockets: list | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(self._loop_exception)
        await super().startup(sockets=sockets)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS:
            self.note("accept", f"cannot accept connections: {exc.strerror} (errno {exc.errno}); "
                      "lower --max-connections or raise the open-files limit (ulimit -n)")
            return
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # a peer that went away mid-write: nothing to report
        loop.default_exception_handler(context)

    async def shutdown(self, sockets: list | None = None) -> None:
        """Stop accepting, send every viewer a close frame, wait briefly, then cut what is left."""
        loop = asyncio.get_running_loop()
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            with contextlib.suppress(Exception):
                connection.shutdown()
        deadline = loop.time() + self.limits.shutdown_grace
        while self.server_state.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.server_state.connections):  # stalled viewers never answer
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        tasks = list(self.server_state.tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.05, deadline - loop.time()))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=0.2)
        if not self.force_exit:
            await self.lifespan.shutdown()
