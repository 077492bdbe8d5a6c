"""Video files and network streams through PyAV (FFmpeg), with open and read timeouts.

PyAV's ``timeout=(open, read)`` installs an FFmpeg interrupt callback, so a server that accepts
the connection and then says nothing cannot block us for longer than the read timeout.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import urlsplit

import av
import av.error

from convscope.errors import SourceError
from convscope.pixels import too_large
from convscope.sources.decoder import RawFrame, as_rgb
from convscope.sources.masking import one_line

log = logging.getLogger("convscope.sources")

# Live input: analyse one second, not FFmpeg's default five, before the first frame. (No
# "nobuffer": it throws away the analysed packets and so delays the first picture to the next
# keyframe; latency is handled by keeping only the newest frame.)
_LIVE_OPTIONS = {"analyzeduration": "1000000"}
_SOCKET_SLACK = 1.0  # seconds added to FFmpeg's socket timeouts (see AvDecoder)
_SCHEME_OPTIONS = {
    # TCP interleaving: no lost packets, passes NAT and firewalls; most cameras support it.
    "rtsp": {"rtsp_transport": "tcp"},
    "rtsps": {"rtsp_transport": "tcp"},
}


class AvDecoder:
    """An opened file or URL.

    Args:
        target: path or URL as FFmpeg takes it.
        display: the same, secrets masked, for messages.
        scheme: URL scheme, or ``None`` for local files.
        always_live: the scheme never ends by itself (RTSP, RTMP, UDP ...).
        open_timeout: seconds to wait for the input to open.
        read_timeout: seconds to wait for data once open.

    Raises:
        SourceError: the input cannot be opened or holds no video.
    """

    def __init__(
        self,
        target: str,
        display: str,
        *,
        scheme: str | None = None,
        always_live: bool = False,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._display = display
        self._is_url = scheme is not None
        self._read_timeout = read_timeout
        self._open_timeout = open_timeout
        options: dict[str, str] = {}
        if scheme is not None:
            _check_host(target, display)
            # Socket-level timeouts too: a server that accepts and then says nothing fails within
            # the read timeout even while FFmpeg is still "opening" (waiting for its reply).
            # A little over the read timeout: the source's own watchdog declares the input lost
            # at exactly the read timeout, before FFmpeg hands out what it still buffers.
            micros = str(int((read_timeout + _SOCKET_SLACK) * 1_000_000))
            options["rw_timeout"] = micros
            if scheme in ("rtsp", "rtsps", "tcp", "udp"):
                options["timeout"] = micros
            options.update(_SCHEME_OPTIONS.get(scheme, {}))
            if always_live:
                options.update(_LIVE_OPTIONS)
        self._container = None
        started = time.monotonic()
        try:
            self._container = av.open(target, options=options, timeout=(open_timeout, read_timeout + _SOCKET_SLACK))
        except av.error.FFmpegError as exc:
            elapsed = time.monotonic() - started
            waited = open_timeout if elapsed >= 0.95 * open_timeout else read_timeout
            timed_out = isinstance(exc, av.error.TimeoutError) or elapsed >= 0.95 * min(open_timeout, read_timeout)
            raise SourceError(self._describe(exc, opening=True, timed_out=timed_out, waited=waited)) from None
        except OSError as exc:  # raised by PyAV for some protocol errors
            raise SourceError(f"cannot open {display}: {one_line(exc.strerror or str(exc))}") from None
        videos = self._container.streams.video
        if not videos:
            self.close()
            raise SourceError(f"no video stream in {display}")
        self._stream = videos[0]
        ctx = self._stream.codec_context
        reason = too_large(ctx.width, ctx.height) if ctx.width and ctx.height else None
        if reason is not None:  # from the stream header, before a frame is decoded
            self.close()
            raise SourceError(f"{display}: {reason}")
        self._stream.thread_type = "AUTO" if scheme is None else "SLICE"
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self.fps = _as_fps(rate)
        self.live = always_live or (scheme is not None and self._container.duration is None)

    def frames(self) -> Iterator[RawFrame]:
        """Decode every frame; broken packets are skipped, lost input raises ``SourceError``.

        A local file that ends well before its stated duration (truncated, or so corrupt that
        FFmpeg gives up) or had broken packets raises ``SourceError`` at its end, after its
        readable frames, so the user sees why it stopped (a damaged file does not loop).
        """
        broken = 0
        last: float | None = None
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError as exc:
                    broken += 1
                    log.debug("skipping a broken packet in %s: %s", self._display, one_line(str(exc)))
                    continue
                for frame in decoded:
                    reason = too_large(frame.width, frame.height)
                    if reason is not None:
                        raise SourceError(f"{self._display}: {reason}")
                    last = frame.time if frame.time is not None else last
                    yield RawFrame(as_rgb(frame.to_ndarray(format="rgb24")), frame.time)
        except av.error.EOFError:
            pass
        except av.error.FFmpegError as exc:
            raise SourceError(self._describe(exc, opening=False)) from None
        except OSError as exc:
            raise SourceError(f"reading {self._display} failed: {one_line(exc.strerror or str(exc))}") from None
        self._check_complete(last, broken)

    def _check_complete(self, last: float | None, broken: int) -> None:
        """Raise when a local file stopped well short of its duration or had broken packets."""
        if self._is_url or self._container is None:
            return
        expected = _expected_end(self._container, self._stream)
        period = 1.0 / self.fps if self.fps > 0 else 0.04
        bad = f", {broken} broken packet(s)" if broken else ""
        if expected is not None and (last is None or last < expected - max(1.0, 3 * period)):
            got = f"{last:.1f} s" if last is not None else "nothing"
            raise SourceError(f"{self._display} ended early: decoded {got} of {expected:.1f} s{bad} "
                              "(the file is truncated or corrupt)")
        if broken:
            raise SourceError(f"{self._display} is damaged: {broken} broken packet(s) skipped "
                              "(the file is corrupt)")

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            self._container = None
            try:
                container.close()
            except Exception:  # closing a broken input must not hide the first error
                pass

    def _describe(
        self, exc: av.error.FFmpegError, opening: bool, timed_out: bool = False, waited: float | None = None
    ) -> str:
        """One line for an FFmpeg error, without the URL FFmpeg appends (it may hold a password)."""
        what = f"cannot open {self._display}" if opening else f"reading {self._display} failed"
        reason = one_line(getattr(exc, "strerror", None) or type(exc).__name__)
        if isinstance(exc, av.error.ExitError | av.error.TimeoutError) or timed_out:
            seconds = waited if waited is not None else self._read_timeout
            return f"{what}: no answer within {seconds:g} s (timed out)"
        if isinstance(exc, av.error.InvalidDataError) and opening:
            if self._is_url:
                return f"{what}: the server did not send video FFmpeg can read"
            return f"not a video FFmpeg can read: {self._display}"
        if isinstance(exc, av.error.ProtocolNotFoundError):
            return f"{what}: this FFmpeg build (inside PyAV) does not support that protocol"
        return f"{what}: {reason}"


def _check_host(url: str, display: str) -> None:
    """Fail with a clear line when the host does not resolve (FFmpeg only says 'I/O error')."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        raise SourceError(f"malformed URL: {display}") from None
    if not host:
        return
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise SourceError(f"cannot open {display}: host {host!r} does not resolve") from None


def _expected_end(container, stream) -> float | None:
    """Media time (s) at which the video stream should end, from its header; ``None`` if unknown."""
    tb = stream.time_base
    if stream.duration and stream.duration > 0 and tb:
        start = stream.start_time * tb if stream.start_time is not None else 0
        return float(start + stream.duration * tb)
    if container.duration and container.duration > 0:
        start = container.start_time if container.start_time is not None else 0
        return (start + container.duration) / 1_000_000
    return None


def _as_fps(rate: Fraction | None) -> float:
    try:
        fps = float(rate) if rate else 0.0
    except (TypeError, ZeroDivisionError):
        return 0.0
    return fps if 0.0 < fps < 1000.0 else 0.0
