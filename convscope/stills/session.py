"""The glue every still-image command shares: open INPUT and OUTPUT, hold the engine, sum up.

Kept apart from the command modules so ``gradcam``, ``guided-backprop`` and ``explain`` differ
only in what they ask the engine for and what they write.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TextIO

import numpy as np

from convscope.engine import Engine, Result
from convscope.errors import InputError
from convscope.models import LayerInfo, ModelBundle, discover_layers
from convscope.stills.inputs import InputSet, expand_input
from convscope.stills.outputs import Layout, plan_layout
from convscope.stills.runner import Summary
from convscope.stills.targets import describe_target, resolved_target
from convscope.views.maps import MapOutput


def open_io(args: argparse.Namespace, folder_only: bool = False) -> tuple[InputSet, Layout]:
    """Expand INPUT and prepare OUTPUT (both fail fast, before the model loads)."""
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be 1 or more, got {args.batch_size}")
    from convscope.pixels import set_max_pixels

    set_max_pixels(getattr(args, "max_pixels", None))  # None: the default (or CONVSCOPE_MAX_PIXELS)
    inputs = expand_input(args.input, args.every)
    return inputs, plan_layout(inputs.kind, args.output, getattr(args, "ext", None), folder_only)


@contextlib.contextmanager
def engine_for(bundle: ModelBundle) -> Iterator[Engine]:
    """An engine that is closed (hooks removed, model state restored) however the run ends."""
    engine = Engine(bundle)
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
