"""Feed items to the engine in batches, with a progress bar and a list of what was skipped.

The commands give a ``process(items, frames)`` callback; this module owns everything around it:
decoding, batching, the images/s bar, and turning unreadable files into a warning list (or, with
``--strict``, into an error), so every command treats bad inputs the same way.

On a terminal the progress is a tqdm bar; when stderr is a log file or a pipe (CI, ``nohup``,
``docker logs``) it is plain ``convscope: 16/32 images, 7.9 img/s`` lines instead, every
:data:`LOG_EVERY` seconds and at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from convscope.errors import InputError
from convscope.stills.inputs import InputSet, Item, Unreadable, load_item

Process = Callable[[list[Item], list[np.ndarray]], None]

#: Seconds between two progress lines when stderr is not a terminal.
LOG_EVERY = 10.0


def emit(line: str, stream=None) -> None:
    """Print one line (a per-item result) without tearing a progress bar on the terminal."""
    tqdm.write(line, file=stream or sys.stdout)


class _LogProgress:
    """Progress as plain lines, for logs: what a bar would say, a line at a time."""

    def __init__(self, total: int | None, stream):
        self.total, self.stream = total, stream
        self.n, self.skipped = 0, 0
        self.start = time.perf_counter()
        self.last: float | None = None
        self.printed = (0, 0)

    def update(self, n: int) -> None:
        self.n += n
        now = time.perf_counter()
        if now - (self.last if self.last is not None else self.start) >= LOG_EVERY:
            self.line(now)

    def line(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self.last = now
        self.printed = (self.n, self.skipped)
        of = f"/{self.total}" if self.total else ""
        rate = self.n / max(now - self.start, 1e-9)
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        print(f"convscope: {self.n}{of} images, {rate:.1f} img/s, {now - self.start:.1f} s{skipped}",
              file=self.stream, flush=True)


@dataclass
class Summary:
    """What a run did: items written and items skipped with their reasons."""

    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def report(self, stream=None) -> None:
        """Print the skipped files (one line each) as a warning block on stderr."""
        stream = stream or sys.stderr
        if not self.skipped:
            return
        print(f"warning: skipped {len(self.skipped)} unreadable file(s):", file=stream)
        for rel, reason in self.skipped:
            print(f"  {rel}: {reason}", file=stream)


def _batches(
    inputs: InputSet, batch_size: int, summary: Summary, strict: bool, bar: tqdm, log: _LogProgress | None
) -> Iterator[tuple[list[Item], list[np.ndarray]]]:
    items: list[Item] = []
    frames: list[np.ndarray] = []
    for item in inputs.items:
        try:
            frame = load_item(item)
        except Unreadable as exc:
            if inputs.kind == "image":
                raise InputError(f"cannot read {item.path}: {exc}") from None
            if strict:
                raise InputError(f"cannot read {item.rel}: {exc} (--strict)") from None
            summary.skipped.append((item.rel, str(exc)))
            bar.update(1)
            bar.set_postfix(skipped=len(summary.skipped), refresh=False)
            if log is not None:
                log.skipped += 1
                log.update(1)
            continue
        items.append(item)
        frames.append(frame)
        if len(items) == batch_size:
            yield items, frames
            items, frames = [], []
    if items:
        yield items, frames


def run_items(
    inputs: InputSet,
    process: Process,
    *,
    batch_size: int = 8,
    strict: bool = False,
    progress: bool | None = None,
) -> Summary:
    """Decode ``inputs`` batch by batch and hand each batch to ``process``.

    Args:
        inputs: from :func:`convscope.stills.inputs.expand_input`.
        process: called with the items of a batch and their RGB frames.
        batch_size: images per engine batch.
        strict: an unreadable file is an error instead of a warning.
        progress: show progress (images/s) on stderr for folders and videos; None: a bar on a
            terminal, plain lines otherwise (logs); True: always a bar; False: nothing.

    Returns:
        The summary; unreadable files of a folder or video are listed in ``skipped``.

    Raises:
        InputError: the single input image is unreadable, or any file is with ``strict``, or
            nothing at all could be read.
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be 1 or more, got {batch_size}")
    summary = Summary()
    disable = True
    log = None
    if inputs.kind != "image" and progress is not False:
        tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        disable = not (progress or tty)
        if disable:
            log = _LogProgress(inputs.count, sys.stderr)
    with tqdm(total=inputs.count, unit="img", desc="convscope", disable=disable, file=sys.stderr,
              dynamic_ncols=True) as bar:
        try:
            for items, frames in _batches(inputs, batch_size, summary, strict, bar, log):
                process(items, frames)
                summary.done += len(items)
                bar.update(len(items))
                if log is not None:
                    log.update(len(items))
        except BaseException:
            bar.leave = False  # an error line should not share the screen with a half bar
            raise
    if log is not None and (log.n, log.skipped) != log.printed:
        log.line()
    if summary.done == 0 and summary.skipped:
        raise InputError(f"none of the {len(summary.skipped)} input file(s) could be read "
                         f"(first: {summary.skipped[0][0]}: {summary.skipped[0][1]})")
    return summary
