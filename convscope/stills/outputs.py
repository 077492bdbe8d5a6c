"""Where the still-image commands write, and how: output path rules, PNG/JPEG, ``.npy``, JSON.

Path rules (the seed's, extended to folders and videos):

* one image in, OUTPUT a file name (``out.jpg``): outputs are ``out_0.jpg``, ``out_1.jpg`` ... (or
  exactly ``out.jpg`` for one-output commands);
* one image in, OUTPUT an existing folder (or a name without an image extension, created when
  missing): outputs go into it, named after the input (``cat_0.jpg`` for ``cat.jpg``);
* a folder or a video in: OUTPUT is a folder that mirrors the input's relative paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from convscope.errors import OutputError
from convscope.stills.inputs import IMAGE_EXTENSIONS, InputKind, Item

_JPEG = {".jpg", ".jpeg", ".jpe", ".jfif"}


def writable_extension(ext: str, fallback: str = ".png") -> str:
    """``ext`` when Pillow can write it, else ``fallback``: a ``.gif`` input gets a ``.png`` map."""
    e = ext.lower()
    if e in {".gif", ".ico", ".pbm", ".pgm", ".avif", ".qoi", ".apng", ".pcx", ".sgi", ".tga"}:
        return fallback  # palette / greyscale / lossy-palette formats would spoil a heatmap
    Image.init()
    fmt = Image.registered_extensions().get(e)
    return ext if fmt is not None and fmt in Image.SAVE else fallback


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents); a one-line :class:`OutputError` when that is impossible."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write to {path}: a file of that name exists") from None
    except NotADirectoryError:
        raise OutputError(f"cannot write to {path}: a parent of it is a file") from None
    except PermissionError:
        raise OutputError(f"cannot write to {path}: permission denied") from None
    except OSError as exc:
        raise OutputError(f"cannot write to {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {path}: permission denied")
    return path


@dataclass(frozen=True)
class Layout:
    """Maps each item to its output paths.

    Attributes:
        base: the output folder.
        file_stem: for one image written to a file name, that name's stem (``out`` for ``out.jpg``).
        ext: forced output extension (from the file name or ``--ext``), else None (keep the input's).
        flat: True when one item's outputs go straight into ``base`` (one image in).
    """

    base: Path
    file_stem: str | None
    ext: str | None
    flat: bool

    def stem(self, item: Item) -> Path:
        """Output path of ``item`` without extension (``base/a/b`` for ``a/b.jpg``)."""
        if self.file_stem is not None:
            return self.base / self.file_stem
        if self.flat:
            return self.base / Path(item.stem).name
        return self.base / item.stem

    def image_path(self, item: Item, suffix: str = "") -> Path:
        """``{stem}{suffix}{ext}``, with the input's extension when Pillow can write it."""
        ext = self.ext or writable_extension(item.ext or ".png")
        stem = self.stem(item)
        path = stem.with_name(stem.name + suffix + ext)
        if item.frame is None and path.resolve() == item.path.resolve():
            raise OutputError(f"refusing to overwrite the input {item.path}: choose another OUTPUT")
        return path

    def folder(self, item: Item) -> Path:
        """The folder for an item's many outputs (``explain``): ``base`` for one image, else ``base/rel_stem``."""
        return self.base if self.flat else self.base / item.stem


def plan_layout(kind: InputKind, output: str | Path, ext: str | None = None, folder_only: bool = False) -> Layout:
    """Apply the path rules to OUTPUT and create the output folder.

    Args:
        kind: what INPUT is.
        output: OUTPUT as given.
        ext: ``--ext`` (``.png`` / ``png``), overriding the extension of written images.
        folder_only: OUTPUT must be a folder (``explain``).

    Raises:
        OutputError: OUTPUT cannot be created or written, or is a file where a folder is needed.
    """
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if writable_extension(ext, fallback="") == "":
            raise OutputError(f"cannot write images as {ext}: use png or jpg")
    out = Path(output).expanduser()
    names_file = out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir()
    if kind == "image" and names_file and not folder_only:
        ensure_dir(out.parent if str(out.parent) else Path("."))
        file_ext = ext or writable_extension(out.suffix, fallback="")
        if not file_ext:
            raise OutputError(f"cannot write images as {out.suffix}: use png or jpg")
        return Layout(out.parent, out.stem, file_ext, True)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {output} is a file, but a folder is needed here")
    return Layout(ensure_dir(out), None, ext, kind == "image")


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write an HxWx3 uint8 image; JPEG at quality 95 (heatmaps band at the default 75)."""
    ensure_dir(path.parent)
    kwargs = {"quality": 95} if path.suffix.lower() in _JPEG else {}
    try:
        Image.fromarray(np.ascontiguousarray(image)).save(path, **kwargs)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def write_npy(path: Path, array: np.ndarray) -> Path:
    """Write a float32 ``.npy`` (maps before any normalisation, the model input)."""
    ensure_dir(path.parent)
    try:
        np.save(path, np.asarray(array, dtype=np.float32))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def write_json(path: Path, data: object) -> Path:
    ensure_dir(path.parent)
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` in POSIX form (report.json paths)."""
    return Path(os.path.relpath(path, base)).as_posix()
