"""Run loops in interleaved rounds (A B, B A, A B ...) and keep every frame's timings.

Taking turns many times, in alternating order, spreads slow drift (thermal throttling, other
processes, a browser tab) evenly over both loops, so their ratio stays meaningful on a noisy
machine. Warm-up frames (first calls, allocator growth, cuDNN autotuning) are not kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from convscope.bench.config import BenchConfig
from convscope.bench.loops import StageTimes


class Loop(Protocol):
    name: str

    def step(self, frame: np.ndarray) -> StageTimes: ...


def _finish(loop: Loop) -> None:
    """Let a pipelined loop complete its pending work (untimed) before the other loop's turn."""
    finish = getattr(loop, "finish", None)
    if finish is not None:
        finish()


@dataclass
class Samples:
    """One loop's timed frames.

    Attributes:
        totals: wall seconds of each frame, synchronised at both ends.
        stages: per-frame stage seconds, one dict per frame.
        rounds: ``(frames, seconds)`` the loop ran in each round.
    """

    totals: list[float] = field(default_factory=list)
    stages: list[StageTimes] = field(default_factory=list)
    rounds: list[tuple[int, float]] = field(default_factory=list)


class _Cycle:
    """The frames in order, round and round; each loop has its own so both see the same sequence."""

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        self._frames = frames
        self._i = 0

    def next(self) -> np.ndarray:
        frame = self._frames[self._i % len(self._frames)]
        self._i += 1
        return frame


def _timed(loop: Loop, frame: np.ndarray, sync: Callable[[], None]) -> tuple[float, StageTimes]:
    sync()
    t0 = time.perf_counter()
    stages = loop.step(frame)
    sync()
    return time.perf_counter() - t0, stages


def run_rounds(
    loops: Sequence[Loop],
    frames: Sequence[np.ndarray],
    config: BenchConfig,
    sync: Callable[[], None] = lambda: None,
    after_warmup: Callable[[], None] | None = None,
    after_round: Callable[[int], None] | None = None,
) -> dict[str, Samples]:
    """Warm every loop up, then let them take turns for ``config.rounds`` rounds.

    Args:
        loops: the loops to compare (their ``name`` keys the result).
        frames: decoded frames, fed in the same order to every loop.
        config: the time or frame budget, number of rounds and warm-up frames.
        sync: waits for the device (``torch.cuda.synchronize`` on CUDA).
        after_warmup: called once after warm-up, before the first timed frame (memory sampling).
        after_round: called with the round index after each round (memory sampling).

    Returns:
        The timed frames of each loop.
    """
    cycles = {loop.name: _Cycle(frames) for loop in loops}
    samples = {loop.name: Samples() for loop in loops}
    for loop in loops:
        for _ in range(config.warmup):
            _timed(loop, cycles[loop.name].next(), sync)
        _finish(loop)
    if after_warmup is not None:
        after_warmup()
    for r in range(config.rounds):
        order = loops if r % 2 == 0 else list(reversed(loops))
        for loop in order:
            seconds, count = config.round_budget(r)
            out, cycle = samples[loop.name], cycles[loop.name]
            start, n = time.perf_counter(), 0
            while True:
                if count is not None and n >= count:
                    break
                if seconds is not None and n > 0 and time.perf_counter() - start >= seconds:
                    break
                total, stages = _timed(loop, cycle.next(), sync)
                out.totals.append(total)
                out.stages.append(stages)
                n += 1
            out.rounds.append((n, time.perf_counter() - start))
            _finish(loop)
        if after_round is not None:
            after_round(r)
    return samples
