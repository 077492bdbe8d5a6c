"""Medians over timed frames: robust to the odd slow frame a shared machine throws in."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from convscope.bench.rounds import Samples


@dataclass(frozen=True)
class LoopStats:
    """One loop's summary.

    Attributes:
        frames: timed frames.
        fps: frames per second from the median frame time.
        mean_fps: frames over total timed seconds (pulled down by outliers; for reference).
        frame_ms: median frame time in milliseconds.
        stages_ms: median of each stage, milliseconds, in first-seen order.
    """

    frames: int
    fps: float
    mean_fps: float
    frame_ms: float
    stages_ms: dict[str, float]


def stage_medians(stages: Sequence[dict[str, float]]) -> dict[str, float]:
    """Median seconds of each stage over the frames that reported it, in first-seen order."""
    keys: dict[str, None] = {}
    for frame in stages:
        keys.update(dict.fromkeys(frame))
    return {k: statistics.median(f[k] for f in stages if k in f) for k in keys}


def summarise(samples: Samples) -> LoopStats:
    """Summarise one loop's timed frames (at least one)."""
    if not samples.totals:
        raise ValueError("no timed frames to summarise")
    median = statistics.median(samples.totals)
    return LoopStats(
        frames=len(samples.totals),
        fps=1.0 / median,
        mean_fps=len(samples.totals) / sum(samples.totals),
        frame_ms=median * 1000.0,
        stages_ms={k: v * 1000.0 for k, v in stage_medians(samples.stages).items()},
    )
