"""``open_source(spec)``: pick the reader for a spec, start it, and wait for its first frame."""

from __future__ import annotations

import math
from collections.abc import Callable

from convscope.errors import SourceError
from convscope.sources.av_decoder import AvDecoder
from convscope.sources.decoder import Decoder
from convscope.sources.demo import DemoDecoder
from convscope.sources.images import ImageDecoder, list_images
from convscope.sources.source import Source
from convscope.sources.spec import ALWAYS_LIVE_SCHEMES, ParsedSpec, parse_spec
from convscope.sources.types import SourceKind
from convscope.sources.webcam import WebcamDecoder

_START_MARGIN = 2.0  # seconds on top of the open + read timeouts before open_source gives up

OpenerFactory = Callable[[ParsedSpec, float, float, list[tuple[str, str]]], Callable[[], Decoder]]


def _webcam(p: ParsedSpec, open_timeout: float, read_timeout: float, skipped: list) -> Callable[[], Decoder]:
    return lambda: WebcamDecoder(p.webcam_index or 0, open_timeout=open_timeout, read_timeout=read_timeout)


def _file(p: ParsedSpec, open_timeout: float, read_timeout: float, skipped: list) -> Callable[[], Decoder]:
    return lambda: AvDecoder(p.target, p.display, open_timeout=open_timeout, read_timeout=read_timeout)


def _stream(p: ParsedSpec, open_timeout: float, read_timeout: float, skipped: list) -> Callable[[], Decoder]:
    always_live = p.scheme in ALWAYS_LIVE_SCHEMES
    return lambda: AvDecoder(
        p.target, p.display, scheme=p.scheme, always_live=always_live,
        open_timeout=open_timeout, read_timeout=read_timeout,
    )


def _image(p: ParsedSpec, open_timeout: float, read_timeout: float, skipped: list) -> Callable[[], Decoder]:
    return lambda: ImageDecoder([p.target], p.display, skipped=None)


def _folder(p: ParsedSpec, open_timeout: float, read_timeout: float, skipped: list) -> Callable[[], Decoder]:
    # Listed on every pass, so images added to a folder show up when it loops.
    return lambda: ImageDecoder(list_images(p.target, p.display), p.display, skipped=skipped)


def _demo(p: ParsedSpec, open_timeout: float, read_timeout: float, skipped: list) -> Callable[[], Decoder]:
    return DemoDecoder


# The registry of source kinds; `parse_spec` decides which one a spec names.
OPENERS: dict[SourceKind, OpenerFactory] = {
    "webcam": _webcam,
    "file": _file,
    "stream": _stream,
    "image": _image,
    "folder": _folder,
    "demo": _demo,
}


def open_source(
    spec: str,
    *,
    realtime: bool = True,
    loop: bool | None = None,
    open_timeout: float = 10.0,
    read_timeout: float = 10.0,
    max_reconnects: int | None = None,
) -> Source:
    """Open a frame source and return once its first frame has arrived.

    Args:
        spec: ``demo``; a webcam number or ``/dev/videoN``; a video file; a URL (``rtsp://``,
            ``rtmp://``, ``http(s)://``, ``udp://``, ``tcp://``, ``srt://`` ...); an image file,
            a folder of images (recursive, natural order) or a glob.
        realtime: play files, images and the demo at their own rate keeping only the newest
            frame (for watching); ``False`` hands out every frame as fast as it decodes (for
            benchmarks and the CLI). Live sources always keep only the newest frame.
        loop: start again at the end; default on for live sources and the demo, off otherwise.
            For live sources, off means the end of the stream ends the source (errors still
            reconnect).
        open_timeout: seconds a network source or webcam may take to open.
        read_timeout: seconds to wait for data once open before treating the input as lost.
        max_reconnects: failed reconnects in a row before a live source gives up and ends
            (``None``: keep trying; ``0``: end at the first failure).

    Returns:
        A started :class:`Source`; close it (or use ``with``) when done.

    Raises:
        SourceError: one line, passwords masked, within the timeouts: missing or unreadable
            file, not a video, no such webcam, unsupported scheme, host that does not resolve,
            a server that does not answer.
    """
    for name, value in (("open timeout", open_timeout), ("read timeout", read_timeout)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise SourceError(f"the {name} must be a positive number of seconds, got {value!r}")
    if max_reconnects is not None and max_reconnects < 0:
        raise SourceError(f"max reconnects must be 0 or more, got {max_reconnects}")
    parsed = parse_spec(spec)
    skipped: list[tuple[str, str]] = []
    opener = OPENERS[parsed.kind](parsed, float(open_timeout), float(read_timeout), skipped)
    source = Source(
        parsed.kind, parsed.display, opener,
        realtime=realtime, loop=loop, max_reconnects=max_reconnects, skipped=skipped,
        read_timeout=float(read_timeout),
    )
    return source.start(wait=open_timeout + read_timeout + _START_MARGIN)
