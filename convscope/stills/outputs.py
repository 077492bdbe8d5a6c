"""Where the still-image commands write, and how: output path rules, PNG/JPEG, ``.npy``, JSON.

Path rules (the seed's, extended to folders and videos):

* one image in, OUTPUT a file name (``out.jpg``): outputs are ``out_0.jpg``, ``out_1.jpg`` ... (or
  exactly ``out.jpg`` for one-output commands);
* one image in, OUTPUT an existing folder (or a name without an image extension, created when
  missing): outputs go into it, named after the input (``cat_0.jpg`` for ``cat.jpg``);
* a folder or a video in: OUTPUT is a folder that mirrors the input's relative paths.

No silent loss: two inputs whose names differ only by extension (``b.jpg`` and ``b.png``) keep the
extension in their output names (``b.jpg_0.jpg``, ``b.png_0.png``; :func:`unique_stems`), and a
file that exists is never replaced without ``--overwrite`` (:meth:`Layout.claim`), nor written
twice in one run.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
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
        video: a video input written as a video (OUTPUT ends in .mp4, .webm or .gif).
        overwrite: replace files that exist (``--overwrite``); otherwise :meth:`claim` refuses.
        names: output stems of the items whose own stem clashes with another's (see
            :func:`unique_stems`), by ``rel``.
        claimed: every path this run has written or is about to write.
    """

    base: Path
    file_stem: str | None
    ext: str | None
    flat: bool
    overwrite: bool = False
    video: bool = False
    names: dict[str, str] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set, compare=False, repr=False)

    def item_stem(self, item: Item) -> str:
        """``item.stem``, or its unique replacement when two inputs share it."""
        return self.names.get(item.rel, item.stem)

    def stem(self, item: Item) -> Path:
        """Output path of ``item`` without extension (``base/a/b`` for ``a/b.jpg``)."""
        if self.file_stem is not None:
            return self.base / self.file_stem
        if self.flat:
            return self.base / Path(self.item_stem(item)).name
        return self.base / self.item_stem(item)

    def claim(self, path: Path) -> Path:
        """``path``, once it is known to be free: not written before in this run, and not an
        existing file unless ``overwrite``.

        Raises:
            OutputError: one line saying which file and what to do.
        """
        key = os.path.normcase(os.path.abspath(path))
        if key in self.claimed:
            raise OutputError(f"two outputs of this run would both be {path}: rename one of the inputs")
        if not self.overwrite and os.path.lexists(path):
            raise OutputError(f"{path} exists: pass --overwrite to replace it, or choose another OUTPUT")
        self.claimed.add(key)
        return path

    def check_free(self, paths: list[Path]) -> None:
        """Fail before any work when one of ``paths`` exists (and ``overwrite`` is off)."""
        if self.overwrite:
            return
        for path in paths:
            if os.path.lexists(path):
                raise OutputError(f"{path} exists: pass --overwrite to replace it, or choose another OUTPUT")

    def image_path_unclaimed(self, item: Item, suffix: str = "") -> Path:
        """``{stem}{suffix}{ext}``, with the input's extension when Pillow can write it."""
        ext = self.ext if self.video else (self.ext or writable_extension(item.ext or ".png"))
        stem = self.stem(item)
        path = stem.with_name(stem.name + suffix + ext)
        if item.frame is None and path.resolve() == item.path.resolve():
            raise OutputError(f"refusing to overwrite the input {item.path}: choose another OUTPUT")
        return path

    def image_path(self, item: Item, suffix: str = "") -> Path:
        """:meth:`image_path_unclaimed`, claimed for writing (see :meth:`claim`)."""
        return self.claim(self.image_path_unclaimed(item, suffix))

    def folder(self, item: Item) -> Path:
        """The folder for an item's many outputs (``explain``): ``base`` for one image, else ``base/rel_stem``."""
        return self.base if self.flat else self.base / self.item_stem(item)


def unique_stems(rels: list[str]) -> dict[str, str]:
    """Output stems for inputs whose stems clash, by ``rel``: ``{"b.jpg": "b.jpg", "b.png": "b.png"}``.

    Stems are compared case-insensitively (``B.jpg`` and ``b.png`` clash on macOS and Windows).
    A clashing input keeps its extension in the stem; if that still clashes (``b.jpg.png`` next
    to ``b.jpg`` and ``b.png``), a counter ``~2``, ``~3`` ... is added. Inputs that do not clash
    are not listed: their outputs keep today's names.
    """
    def stem_of(rel: str) -> str:
        p = Path(rel)
        return str(p.with_suffix("")) if p.suffix else rel

    groups: dict[str, list[str]] = defaultdict(list)
    for rel in rels:
        groups[stem_of(rel).casefold()].append(rel)
    chosen = {rel: (rel if len(groups[stem_of(rel).casefold()]) > 1 else stem_of(rel)) for rel in rels}
    used: set[str] = set()
    out: dict[str, str] = {}
    for rel in rels:
        name = chosen[rel]
        if name.casefold() in used:
            n = 2
            while f"{name}~{n}".casefold() in used or f"{name}~{n}".casefold() in groups:
                n += 1
            name = f"{name}~{n}"
        used.add(name.casefold())
        if name != stem_of(rel):
            out[rel] = name
    return out


def plan_layout(
    kind: InputKind,
    output: str | Path,
    ext: str | None = None,
    folder_only: bool = False,
    overwrite: bool = False,
) -> Layout:
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
    from convscope.stills.video_out import is_video_output

    if kind == "video" and is_video_output(out) and not folder_only and not out.is_dir():
        ensure_dir(out.parent if str(out.parent) else Path("."))
        return Layout(out.parent, out.stem, out.suffix.lower(), True, overwrite, video=True)
    names_file = out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir()
    if kind == "image" and names_file and not folder_only:
        ensure_dir(out.parent if str(out.parent) else Path("."))
        file_ext = ext or writable_extension(out.suffix, fallback="")
        if not file_ext:
            raise OutputError(f"cannot write images as {out.suffix}: use png or jpg")
        return Layout(out.parent, out.stem, file_ext, True, overwrite)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {output} is a file, but a folder is needed here")
    return Layout(ensure_dir(out), None, ext, kind == "image", overwrite)


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


class Journal:
    """``results.jsonl``: one JSON line per item of a folder or video run, written as it goes.

    Each line holds the input (relative to the output folder), the frame index for video frames,
    the predictions and the files written for it (relative to the output folder), so a run that
    stops half-way still says what it did.
    """

    NAME = "results.jsonl"

    def __init__(self, layout: Layout):
        self.layout = layout
        self.path = layout.base / self.NAME
        self._file = None  # opened with the first item: a run that fails before it leaves nothing

    def add(self, item: Item, predictions: list[dict], files: list[Path], **extra) -> None:
        if self._file is None:
            self.layout.claim(self.path)
            try:
                self._file = ensure_dir(self.layout.base).joinpath(self.NAME).open("w", encoding="utf-8")
            except OSError as exc:
                raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        entry = {"input": relative(item.path, self.layout.base)}
        if item.frame is not None:
            entry["frame"] = item.frame
        entry.update(predictions=predictions, files=[relative(f, self.layout.base) for f in files], **extra)
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def predictions_json(result) -> list[dict]:
    """A result's top-k as report.json writes them."""
    return [{"index": p.index, "label": p.label, "probability": float(p.probability)} for p in result.predictions]
