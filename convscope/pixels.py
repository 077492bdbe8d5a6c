"""One image-size guard for every path that decodes pictures (live sources, folders, stills, video).

A 12000x12000 PNG is 420 KB on disk and 432 MB once decoded, several times that while it is
converted; a folder of them makes a server swing by gigabytes. Every decoder checks the size
from the file's header (PIL opens lazily; PyAV and OpenCV report the stream's size) against
:func:`max_pixels` *before* anything is decoded, and refuses with one line.

The default is Pillow's own decompression-bomb threshold (``PIL.Image.MAX_IMAGE_PIXELS``, about
89 megapixels, e.g. 9459x9459). ``--max-pixels N`` on the command line, the environment variable
``CONVSCOPE_MAX_PIXELS`` or :func:`set_max_pixels` changes it for the whole process.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image

from convscope.errors import InputError

#: Pillow's decompression-bomb threshold when this module was imported (89,478,485 pixels).
DEFAULT_MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
ENV = "CONVSCOPE_MAX_PIXELS"

_limit: int | None = None


class ImageTooLarge(InputError):
    """A picture has more pixels than :func:`max_pixels` allows (one-line message)."""


def _from_env() -> int:
    text = os.environ.get(ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        return DEFAULT_MAX_PIXELS
    return value if value > 0 else DEFAULT_MAX_PIXELS


def max_pixels() -> int:
    """The largest picture (width x height) any decoder accepts."""
    return _limit if _limit is not None else _from_env()


def set_max_pixels(limit: int | None) -> None:
    """Set the limit for this process (``None``: back to the default / ``CONVSCOPE_MAX_PIXELS``).

    Pillow's own guard is raised along with it, so that Pillow does not refuse (or warn about)
    what the user allowed.
    """
    global _limit
    if limit is not None and limit <= 0:
        raise ValueError(f"the pixel limit must be positive, got {limit}")
    _limit = limit
    current = max_pixels()
    if current > DEFAULT_MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = current
    else:
        Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS


def too_large(width: int, height: int) -> str | None:
    """The one-line reason a ``width`` x ``height`` picture is refused, or ``None`` if it fits."""
    limit = max_pixels()
    pixels = int(width) * int(height)
    if pixels <= limit:
        return None
    return (f"image too large: {width}x{height} = {pixels / 1e6:.1f} megapixels, the limit is "
            f"{limit / 1e6:.1f} megapixels (raise it with --max-pixels {pixels} or {ENV}={pixels})")


def open_image(path: str | Path) -> Image.Image:
    """``Image.open`` with the size checked from the header; nothing is decoded yet.

    The message of :class:`ImageTooLarge` does not name the file: callers add it.

    The caller owns the returned image (use it in ``with``). Pillow's decompression-bomb warning
    is not shown: this check replaces it.

    Raises:
        ImageTooLarge: over :func:`max_pixels`.
        OSError, ValueError ...: whatever Pillow raises for a file it cannot open.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            raise ImageTooLarge(f"image too large (over twice the limit of {max_pixels() / 1e6:.1f} "
                                f"megapixels; raise it with --max-pixels or {ENV})") from None
    reason = too_large(im.size[0], im.size[1])
    if reason is not None:
        im.close()
        raise ImageTooLarge(reason)
    return im
