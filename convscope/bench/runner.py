"""Put it together: build both loops on one model, run them interleaved, summarise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from convscope.bench.config import BenchConfig, dashboard_request, view_request
from convscope.bench.loops import DashboardLoop, Encoder, NetworkLoop, default_encoder
from convscope.bench.memory import MemoryTrace
from convscope.bench.report import BenchReport
from convscope.bench.rounds import run_rounds
from convscope.bench.stats import summarise
from convscope.models import ModelBundle
from convscope.request import ViewRequest

if TYPE_CHECKING:
    from convscope.engine.seams import FrameEngine


def device_sync(device: torch.device) -> Callable[[], None]:
    """Wait for queued device work (a no-op off CUDA)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _make_engine(bundle: ModelBundle, sync_stages: bool, optimize: bool) -> FrameEngine:
    from convscope.engine import Engine

    return Engine(bundle, sync_timings=sync_stages, optimize=optimize)


def run_bench(
    bundle: ModelBundle,
    frames: Sequence[np.ndarray],
    config: BenchConfig,
    *,
    source: str = "demo",
    request: ViewRequest | None = None,
    encode: Encoder | None = None,
    engine: FrameEngine | None = None,
    sync_stages: bool = False,
    selection: str | None = None,
    encode_thread: bool = True,
    optimize: bool = True,
) -> BenchReport:
    """Measure the bare network and the dashboard on the same frames.

    Args:
        bundle: the loaded model.
        frames: decoded RGB uint8 frames (decode them once, before calling).
        config: view set, duration or frame count, rounds, warm-up.
        source: the spec the frames came from (for the report).
        request: the dashboard's request; default: the view set applied to the request a fresh
            live dashboard sends for this model.
        encode: how a result becomes bytes; default: the live server's encoder.
        engine: an engine to reuse; default: a new one, closed at the end.
        sync_stages: on CUDA, synchronise at every stage boundary of a new engine so each stage
            is charged its own GPU work (exact stage times, slightly lower dashboard FPS).
        selection: what guided backprop explains, when not the dashboard's default.
        encode_thread: encode frame N on a worker thread while the engine computes frame N+1, as
            the live server does (False: encode inline after each frame).
        optimize: let a new engine run its folded, ``channels_last`` copy of the model (as the
            live server does); the network loop always runs the user's module as it is.

    Returns:
        The report (FPS of both loops, their ratio, stage medians, memory).
    """
    device = bundle.device
    own_engine = engine is None
    engine = _make_engine(bundle, sync_stages, optimize) if own_engine else engine
    dashboard = None
    try:
        network = NetworkLoop(bundle)
        if request is None:
            base = dashboard_request(engine.layers, bundle.num_classes, selection)
            request = view_request(config.views, base)
        dashboard = DashboardLoop(engine, request, encode if encode is not None else default_encoder(),
                                  encode_thread=encode_thread)
        memory = MemoryTrace(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        samples = run_rounds(
            [network, dashboard], frames, config, device_sync(device),
            after_warmup=memory.take, after_round=memory.take,
        )
    finally:
        if dashboard is not None:
            dashboard.close()
        if own_engine:
            close = getattr(engine, "close", None)
            if close is not None:
                close()
    return BenchReport(
        model=bundle.name,
        device=str(device),
        views=config.views,
        selection=_selection_of(request),
        source=source,
        distinct_frames=len(frames),
        rounds=config.rounds,
        threads=torch.get_num_threads(),
        network=summarise(samples["network"]),
        dashboard=summarise(samples["dashboard"]),
        memory=memory.as_dict(),
        stages_synced=device.type != "cuda" or (sync_stages and own_engine),
        encode_thread=encode_thread,
        engine=str(getattr(engine, "optimization", "")),
    )


def _selection_of(request: ViewRequest) -> str | None:
    """What guided backprop explained (``None`` when it was not computed)."""
    if "guided_backprop" not in request.algorithms:
        return None
    return request.selection_target.kind
