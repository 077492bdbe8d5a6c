"""Still images: one file, a folder (recursive, natural order) or a glob, as a slideshow.

A corrupt file inside a folder is skipped with a warning and recorded, so one bad photo does not
stop a batch; a single image that cannot be read is an error.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import ImageOps

from convscope.errors import SourceError
from convscope.pixels import open_image
from convscope.sources.decoder import RawFrame, as_rgb
from convscope.sources.masking import one_line
from convscope.sources.spec import IMAGE_SUFFIXES

log = logging.getLogger("convscope.sources")

SLIDE_SECONDS = 1.0  # how long each image shows in real-time mode


def natural_key(path: str) -> tuple:
    """Sort key that puts ``img2`` before ``img10``, folder by folder, ignoring case."""
    return tuple(
        [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", part)]
        for part in Path(path).parts
    )


def list_images(target: str, display: str) -> list[str]:
    """Image files in a folder (recursive) or matching a glob, in natural order.

    Raises:
        SourceError: nothing matches.
    """
    if os.path.isdir(target):
        found = [
            os.path.join(root, name)
            for root, dirs, names in os.walk(target)
            for name in names
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith(".")
        ]
        where = f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {display}"
    else:
        found = [
            p for p in glob.glob(target, recursive=True)
            if os.path.isfile(p) and Path(p).suffix.lower() in IMAGE_SUFFIXES
        ]
        where = f"no images match {display}"
    if not found:
        raise SourceError(where)
    return sorted(found, key=natural_key)


def load_image(path: str) -> np.ndarray:
    """An image file as RGB uint8, EXIF rotation applied, writable.

    Raises:
        ImageTooLarge: over the pixel limit (checked from the header, before decoding).
        OSError, ValueError ...: whatever Pillow raises for a broken file.
    """
    with open_image(path) as im:
        im = ImageOps.exif_transpose(im)
        return as_rgb(np.array(im.convert("RGB")))  # a copy: torch.from_numpy wants a writable array


class ImageDecoder:
    """A list of image files as frames, one per :data:`SLIDE_SECONDS` of media time.

    Args:
        paths: the files, in order.
        display: what to call them in messages.
        skipped: list that collects ``(path, reason)`` of unreadable files (``None``: any
            unreadable file is an error, as for a single image).
    """

    live = False

    def __init__(self, paths: list[str], display: str, skipped: list[tuple[str, str]] | None) -> None:
        self._paths = paths
        self._display = display
        self._skipped = skipped
        self.fps = 1.0 / SLIDE_SECONDS

    def frames(self) -> Iterator[RawFrame]:
        shown = 0
        for path in self._paths:
            try:
                image = load_image(path)
            except Exception as exc:  # PIL raises many types for broken files
                reason = one_line(str(exc)) or type(exc).__name__
                if self._skipped is None:
                    raise SourceError(f"cannot read image {path}: {reason}") from None
                if (path, reason) not in self._skipped:
                    self._skipped.append((path, reason))
                    log.warning("skipping unreadable image %s: %s", path, reason)
                continue
            yield RawFrame(image, shown * SLIDE_SECONDS, path)
            shown += 1
        if shown == 0:
            raise SourceError(f"no readable images in {self._display}")

    def close(self) -> None:
        pass
