"""Turn a source spec string into what to open: a webcam, file, URL, image(s) or the demo.

Rules, in order: ``demo``; a bare number or ``/dev/videoN`` is a webcam; ``scheme://`` is a URL
(``file://`` is a local path); an existing folder is a folder of images; an existing file is an
image when its suffix says so, else a video; a pattern with ``* ? [`` is a glob of images.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from convscope.errors import SourceError
from convscope.sources.masking import mask_secrets
from convscope.sources.types import SourceKind

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
# Schemes handed to FFmpeg. Whether each works depends on the FFmpeg build inside PyAV.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
# Schemes whose input never ends by itself: read as live (newest frame wins, reconnect on loss).
ALWAYS_LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt", "rtp"})

_WEBCAM_DEVICE = re.compile(r"^/dev/video(\d+)$")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
HINT = "a webcam number, a video or image file, a folder, a glob, a URL, or 'demo'"


@dataclass(frozen=True)
class ParsedSpec:
    """A classified source spec.

    Attributes:
        kind: which family of source reads it.
        target: what that family opens: a path, URL, glob pattern or webcam device.
        display: the spec with secrets masked.
        webcam_index: the webcam number for ``kind == "webcam"``.
        scheme: the URL scheme for ``kind == "stream"``.
    """

    kind: SourceKind
    target: str
    display: str
    webcam_index: int | None = None
    scheme: str | None = None


def parse_spec(spec: str) -> ParsedSpec:
    """Classify ``spec``; raise :class:`SourceError` with one line when it names nothing openable."""
    text = str(spec).strip()
    display = mask_secrets(text)
    if not text:
        raise SourceError(f"empty source; give {HINT}")
    if text.lower() == "demo":
        return ParsedSpec("demo", "demo", "demo")
    if text.isdigit():
        return ParsedSpec("webcam", f"/dev/video{int(text)}", display, webcam_index=int(text))
    if m := _WEBCAM_DEVICE.match(text):
        return ParsedSpec("webcam", text, display, webcam_index=int(m[1]))
    if m := _SCHEME.match(text):
        scheme = m[1].lower()
        if scheme == "file":
            return _parse_path(unquote(urlsplit(text).path), display)
        if scheme not in STREAM_SCHEMES:
            raise SourceError(
                f"unsupported URL scheme {scheme!r} in {display} (supported: {', '.join(STREAM_SCHEMES)})"
            )
        if not urlsplit(text).hostname and scheme not in ("udp", "rtp"):
            raise SourceError(f"no host in URL {display}")
        return ParsedSpec("stream", text, display, scheme=scheme)
    return _parse_path(text, display)


def _parse_path(text: str, display: str) -> ParsedSpec:
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        return ParsedSpec("folder", str(path), display)
    if path.is_file():
        kind: SourceKind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "file"
        return ParsedSpec(kind, str(path), display)
    if path.exists():
        raise SourceError(f"not a file or folder: {display}")
    if glob.has_magic(text):
        return ParsedSpec("folder", os.path.expanduser(text), display)
    raise SourceError(f"no such file or folder: {display} (a source is {HINT})")
