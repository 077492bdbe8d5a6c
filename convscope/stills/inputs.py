"""INPUT for the still-image commands: one image, a folder of images or a video, as a list of items.

An item is one picture to explain, with a relative name (``rel``) that the outputs mirror: a
folder's files keep their path relative to the folder, a video's frames are ``{stem}_{index:06d}``.
Images are read lazily (a folder of thousands costs nothing until its batch comes up) and a file
that cannot be decoded becomes a one-line reason instead of an exception, so one bad file never
stops a folder run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from convscope.errors import ConvscopeError, InputError
from convscope.pixels import ImageTooLarge, open_image

#: Extensions treated as images in folders (what Pillow decodes; lower case).
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".avif", ".qoi", ".sgi", ".pcx",
})
#: Extensions treated as videos (decoded with PyAV through :mod:`convscope.sources`).
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp", ".ogv",
})

InputKind = Literal["image", "folder", "video"]


@dataclass(frozen=True)
class Item:
    """One picture to process.

    Attributes:
        rel: name relative to the input root, extension included for files (``a/b.jpg``), or
            ``{video stem}_{frame:06d}`` for video frames; outputs mirror it.
        path: the file it comes from (the video file for frames).
        frame: the frame index within a video, else None.
        image: the decoded RGB frame for video frames (decoded in order); None for files.
    """

    rel: str
    path: Path
    frame: int | None = None
    image: np.ndarray | None = None

    @property
    def stem(self) -> str:
        """``rel`` without its extension (``a/b`` for ``a/b.jpg``)."""
        if self.frame is not None:
            return self.rel
        p = Path(self.rel)
        return str(p.with_suffix("")) if p.suffix else self.rel

    @property
    def ext(self) -> str:
        return "" if self.frame is not None else Path(self.rel).suffix


@dataclass
class InputSet:
    """What INPUT names: its kind, its root and the items (lazy for videos)."""

    kind: InputKind
    root: Path
    items: Iterator[Item]
    count: int | None  # None when unknown in advance (videos without a frame count)
    source: Path | None = None  # the video file, for its frame rate


class Unreadable(Exception):
    """An item that cannot be decoded; ``str(exc)`` is the one-line reason."""


def natural_key(text: str) -> list:
    """Sort key that orders ``img2`` before ``img10`` (case-insensitive, per path component)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", text)]


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into an RGB uint8 HxWx3 array, upright as its EXIF says.

    Transparent pixels are composited over white (dropping alpha would show whatever colour the
    file keeps under them) and 16-bit greyscale is scaled, not clipped.

    Raises:
        Unreadable: with a one-line reason when the file is missing, truncated or not an image.
    """
    path = Path(path)
    try:
        with open_image(path) as im:  # the pixel limit is checked from the header, before decoding
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except ImageTooLarge as exc:
        raise Unreadable(str(exc)) from None
    except FileNotFoundError:
        raise Unreadable("no such file") from None
    except IsADirectoryError:
        raise Unreadable("is a directory") from None
    except PermissionError:
        raise Unreadable("permission denied") from None
    except UnidentifiedImageError:
        raise Unreadable("not an image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unreadable(f"corrupt image ({reason})") from None


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        g = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        g = ((a - lo) / (hi - lo or 1.0) * 255.0 + 0.5).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode != "RGB" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def load_item(item: Item) -> np.ndarray:
    """The RGB frame of an item (decoding its file when needed); raises :class:`Unreadable`."""
    if item.image is not None:
        return item.image
    return read_image(item.path)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def list_folder(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, hidden entries skipped), in natural order."""
    files = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            files.append(p)
    return sorted(files, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def expand_input(path: str | Path, every: int = 1) -> InputSet:
    """Turn INPUT into items.

    Args:
        path: an image file, a folder (searched recursively for images) or a video file.
        every: for videos, keep every N-th frame (frame 0, N, 2N, ...).

    Raises:
        InputError: INPUT is missing, an empty folder, or ``every`` is below 1.
    """
    if every < 1:
        raise InputError(f"--every must be 1 or more, got {every}")
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"input not found: {path}")
    if p.is_dir():
        files = list_folder(p)
        if not files:
            raise InputError(f"no images found in folder {path} (looked for {', '.join(sorted(_COMMON))})")
        items = [Item(f.relative_to(p).as_posix(), f) for f in files]
        return InputSet("folder", p, iter(items), len(items))
    if is_video(p):
        return _video(p, every)
    return InputSet("image", p.parent, iter([Item(p.name, p)]), 1)


_COMMON = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def _video(path: Path, every: int) -> InputSet:
    from convscope.sources import open_source  # imported lazily: PyAV costs time to import

    try:
        source = open_source(str(path), realtime=False, loop=False)
    except ConvscopeError:
        raise
    except Exception as exc:  # any decoder failure is the user's file, not our bug
        raise InputError(f"cannot open video {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    total = _frame_count(path)
    count = None if total is None else (total + every - 1) // every

    def frames() -> Iterator[Item]:
        try:
            for frame in source:
                if frame.index % every == 0:
                    yield Item(f"{path.stem}_{frame.index:06d}", path, frame.index, frame.image)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    return InputSet("video", path.parent, frames(), count, path)


def _frame_count(path: Path) -> int | None:
    """The container's frame count (for the progress bar), None when it does not say."""
    import av

    try:
        with av.open(str(path)) as container:
            n = container.streams.video[0].frames
    except Exception:  # only a nicety: the frames themselves come from the source
        return None
    return int(n) if n and n > 0 else None
