"""The glue every still-image command shares: open INPUT and OUTPUT, hold the engine, sum up.

Kept apart from the command modules so ``gradcam``, ``guided-backprop`` and ``explain`` differ
only in what they ask the engine for and what they write.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from convscope.engine import Engine, Result
from convscope.errors import InputError
from convscope.models import LayerInfo, ModelBundle, discover_layers
from convscope.stills.inputs import InputSet, Item, expand_input
from convscope.stills.outputs import (
    Journal,
    Layout,
    plan_layout,
    predictions_json,
    relative,
    unique_stems,
    write_image,
)
from convscope.stills.runner import Summary, emit
from convscope.stills.targets import describe_target, resolved_target
from convscope.views.maps import MapOutput


def open_io(args: argparse.Namespace, folder_only: bool = False) -> tuple[InputSet, Layout]:
    """Expand INPUT and prepare OUTPUT (both fail fast, before the model loads).

    Inputs of a folder whose names differ only by extension get unique output names, with a
    ``note:`` line on stderr per clash; a folder or video run refuses an OUTPUT that holds an
    earlier run's ``results.jsonl`` unless ``--overwrite``.
    """
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be 1 or more, got {args.batch_size}")
    from convscope.pixels import set_max_pixels

    set_max_pixels(getattr(args, "max_pixels", None))  # None: the default (or CONVSCOPE_MAX_PIXELS)
    inputs = expand_input(args.input, args.every)
    overwrite = bool(getattr(args, "overwrite", False))
    layout = plan_layout(inputs.kind, args.output, getattr(args, "ext", None), folder_only, overwrite)
    if inputs.kind != "image" and not layout.video:
        layout.check_free([layout.base / Journal.NAME])
    if inputs.kind == "folder":
        items = list(inputs.items)
        inputs.items = iter(items)
        layout.names.update(unique_stems([item.rel for item in items]))
        clashes: dict[str, list[str]] = {}
        for rel in layout.names:
            stem = next(i.stem for i in items if i.rel == rel)
            clashes.setdefault(stem.casefold(), []).append(rel)
        for rels in clashes.values():
            names = " and ".join(rels)
            outs = ", ".join(layout.names[r] for r in rels)
            print(f"note: {names} share a name; their outputs keep the extension: {outs}", file=sys.stderr)
    return inputs, layout


def check_outputs_free(inputs: InputSet, layout: Layout, suffixes: list[str]) -> None:
    """Fail before the model loads when an output whose name is known in advance exists: one
    image's files, or a video's output videos (``suffixes``: ``_0``, ``_1`` ... or ``""``)."""
    if inputs.kind == "image":
        items = list(inputs.items)
        inputs.items = iter(items)
        first = items[0]
    elif layout.video:
        first = Item("video", inputs.source or layout.base, 0)
    else:
        return
    layout.check_free([layout.image_path_unclaimed(first, suffix) for suffix in suffixes])


def journal(layout: Layout, inputs: InputSet) -> Journal | None:
    """``results.jsonl`` for folder and video runs, None for one image."""
    return None if inputs.kind == "image" else Journal(layout)


@contextlib.contextmanager
def engine_for(bundle: ModelBundle, optimize: bool = True) -> Iterator[Engine]:
    """An engine that is closed (hooks removed, model state restored) however the run ends.

    ``optimize=False`` skips the folded model copy and its start-up check: for one image they
    cost more than they save.
    """
    engine = Engine(bundle, optimize=optimize)
    try:
        yield engine
    finally:
        close = getattr(engine, "close", None)
        if close is not None:
            close()


def layers(engine: Engine, bundle: ModelBundle) -> list[LayerInfo]:
    """The model's conv and linear layers, from the engine when it already found them."""
    known = getattr(engine, "layers", None)
    if isinstance(known, list | tuple) and known and isinstance(known[0], LayerInfo):
        return list(known)
    return discover_layers(bundle)


def picture(output: MapOutput) -> np.ndarray:
    """What to write for a map: the overlay on the input for CAMs, the map itself otherwise."""
    return output.overlay if output.overlay is not None else output.image


def probability(result: Result, index: int | None) -> float | None:
    """The predicted probability of class ``index`` when it is among the result's top-k."""
    for p in result.predictions:
        if p.index == index:
            return float(p.probability)
    return None


def draw(output: MapOutput, result: Result, frame: np.ndarray, bundle: ModelBundle, style) -> np.ndarray:
    """The picture to write for ``output`` at the geometry and look ``style`` asks for
    (:mod:`convscope.stills.present`); the engine's own picture when the raw map is missing."""
    from convscope.stills.present import caption_of, still

    if output.raw is None:
        return picture(output)
    target = resolved_target(output, result)
    prob = probability(result, target.index) if target.kind == "class" else None
    text = caption_of(output, prob, describe_target(target, bundle.labels)) if style.annotate else ""
    return still(output, frame, bundle.preprocessing, style, text, result.input)


def caption(output: MapOutput, result: Result, labels: tuple[str, ...]) -> str:
    """``class 285 Egyptian cat (p=0.623)`` for a printed line."""
    target = resolved_target(output, result)
    text = describe_target(target, labels)
    if target.kind == "class":
        for p in result.predictions:
            if p.index == target.index:
                return f"{text} (p={p.probability:.3f})"
    return text


def blank_warning(output: MapOutput, target, labels: tuple[str, ...], where: str | None = None) -> str:
    """``warning: gradcam at layer4 for class 281 tabby is all zero: ...`` for a blank map."""
    at = f" at {output.layer}" if output.layer else ""
    of = f" of {where}" if where else ""
    verb = "has" if str(output.empty).startswith("non-finite") else "is"
    return f"warning: {output.algorithm}{at} for {describe_target(target, labels)}{of} {verb} {output.empty}"


def finish(summary: Summary, layout: Layout, inputs: InputSet, *, quiet: bool, stream: TextIO) -> None:
    """The closing lines: where the outputs went, and the skipped files as a warning."""
    if not quiet and inputs.kind != "image":
        print(f"processed {summary.done} image(s) into {layout.base}", file=stream)
    summary.report(stream)


class Sink:
    """Where a command's pictures go, and what it says about each item.

    * one image: files, and one ``PATH: caption`` line per picture (as before);
    * a folder, or a video into a folder: files mirroring the input, one line per item
      (``set_a/cat.png: class 285 Egyptian cat (p=0.774) -> set_a/cat_0.png``) and
      ``results.jsonl`` (:class:`convscope.stills.outputs.Journal`);
    * a video into ``.mp4`` / ``.webm`` / ``.gif``: one video per output slot (``out_0.mp4`` ...),
      at the input's frame rate divided by ``--every``.
    """

    def __init__(self, layout: Layout, inputs: InputSet, quiet: bool, every: int = 1):
        self.layout, self.inputs, self.quiet = layout, inputs, quiet
        self.journal = None if layout.video else journal(layout, inputs)
        self.videos: dict[str, object] = {}
        self.rate = None
        if layout.video:
            from convscope.stills.video_out import frame_rate

            self.rate = frame_rate(inputs.source) / every

    def put(self, item, suffix: str, image: np.ndarray) -> Path:
        """Write ``image`` as the ``suffix`` output of ``item`` (a file, or a frame of a video)."""
        if not self.layout.video:
            return write_image(self.layout.image_path(item, suffix), image)
        writer = self.videos.get(suffix)
        if writer is None:
            from convscope.stills.video_out import VideoWriter

            writer = self.videos[suffix] = VideoWriter(self.layout.image_path(item, suffix), self.rate)
        writer.write(image)
        return writer.path

    def item(self, item, result: Result, captions: list[str], files: list[Path]) -> None:
        """Record one item: its line (folders and videos into folders) and its results.jsonl entry."""
        if self.journal is not None:
            self.journal.add(item, predictions_json(result), files)
        if self.quiet or self.layout.video:
            return
        if self.inputs.kind == "image":
            for path, text in zip(files, captions, strict=True):
                print(f"{path}: {text}")
            return
        parts = [f"{text} -> {relative(path, self.layout.base)}" for path, text in zip(files, captions, strict=True)]
        emit(f"{item.rel}: " + "; ".join(parts))

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
        for writer in self.videos.values():
            writer.close()

    def closing_lines(self) -> list[str]:
        return [f"wrote {w.path} ({w.frames} frames at {float(w.rate):.3g} fps)" for w in self.videos.values()]
