"""A benchmark's outcome as JSON (for scripts and the README table) or as a short text table."""

from __future__ import annotations

from dataclasses import dataclass, field

from convscope.bench.stats import LoopStats


def _r(x: float, digits: int = 3) -> float:
    return round(float(x), digits)


@dataclass(frozen=True)
class BenchReport:
    """What ``convscope bench`` found.

    Attributes:
        model: the bundle's display name.
        device: where the model ran (``cpu``, ``cuda:0``).
        views: the view set measured.
        selection: the kind of target guided backprop explained (``channel``, ``class``,
            ``neuron``), ``None`` when the view set has no guided backprop.
        source: the source spec the frames came from.
        distinct_frames: how many decoded frames both loops cycled through.
        rounds: rounds the loops took turns in.
        threads: torch intra-op threads.
        network: the bare network loop's summary.
        dashboard: the dashboard loop's summary.
        memory: start/end memory figures (MiB).
        stages_synced: stage times include their own device work (always true off CUDA); when
            false, a CUDA stage time is its launch time and the waiting shows up in ``copy``.
        encode_thread: the dashboard encoded on a worker thread, overlapping the next frame (as the
            live server does); False: inline after each frame.
        engine: how the dashboard's engine ran the model (``Engine.optimization``, e.g.
            ``49 BatchNorm folded into convs, channels_last``); the network loop always runs the
            user's module as it is.
    """

    model: str
    device: str
    views: str
    selection: str | None
    source: str
    distinct_frames: int
    rounds: int
    threads: int
    network: LoopStats
    dashboard: LoopStats
    memory: dict[str, float] = field(default_factory=dict)
    stages_synced: bool = True
    encode_thread: bool = True
    engine: str = ""

    @property
    def ratio(self) -> float:
        """Dashboard FPS over network FPS: 1.0 means the dashboard costs nothing extra."""
        return self.dashboard.fps / self.network.fps

    def as_dict(self) -> dict:
        """The ``--json`` document; stage times are median milliseconds per frame."""
        return {
            "model": self.model,
            "device": self.device,
            "views": self.views,
            "selection": self.selection,
            "gb_source": self.selection,  # the old name of "selection", kept for scripts that read it
            "network_fps": _r(self.network.fps),
            "dashboard_fps": _r(self.dashboard.fps),
            "ratio": _r(self.ratio, 4),
            "stages": {k: _r(v) for k, v in self.dashboard.stages_ms.items()},
            "network_stages": {k: _r(v) for k, v in self.network.stages_ms.items()},
            "frame_ms": {"network": _r(self.network.frame_ms), "dashboard": _r(self.dashboard.frame_ms)},
            "mean_fps": {"network": _r(self.network.mean_fps), "dashboard": _r(self.dashboard.mean_fps)},
            "frames": {"network": self.network.frames, "dashboard": self.dashboard.frames},
            "source": self.source,
            "distinct_frames": self.distinct_frames,
            "rounds": self.rounds,
            "threads": self.threads,
            "memory": self.memory,
            "stages_synced": self.stages_synced,
            "encode_thread": self.encode_thread,
            "engine": self.engine,
        }

    def format_text(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"{self.model} on {self.device}, views {self.views}"
            + (f" (guided backprop of the {self.selection})" if self.selection else "")
            + ("" if self.encode_thread else ", inline encoding") + ", "
            f"{self.distinct_frames} frames from {self.source}, {self.rounds} rounds, {self.threads} threads",
            f"{'loop':<10} {'frames':>6} {'FPS':>8} {'ms/frame':>9}",
        ]
        for name, s in (("network", self.network), ("dashboard", self.dashboard)):
            lines.append(f"{name:<10} {s.frames:>6} {s.fps:>8.2f} {s.frame_ms:>9.1f}")
        lines.append(f"ratio (dashboard / network FPS): {self.ratio:.3f}")
        if self.engine:
            lines.append(f"dashboard engine: {self.engine}; network loop: the model as loaded")
        for name, s in (("dashboard", self.dashboard), ("network", self.network)):
            stages = "  ".join(f"{k} {v:.1f}" for k, v in s.stages_ms.items())
            lines.append(f"{name} stages (median ms): {stages}")
        if not self.stages_synced:
            lines.append("(CUDA stage times are launch times; use --sync-stages for exact ones)")
        m = self.memory
        if m:
            text = f"memory: RSS {m['rss_start_mb']:.1f} -> {m['rss_end_mb']:.1f} MiB (max {m['rss_max_mb']:.1f})"
            if "cuda_allocated_start_mb" in m:
                text += (f"; CUDA allocated {m['cuda_allocated_start_mb']:.1f} -> "
                         f"{m['cuda_allocated_end_mb']:.1f} MiB (peak {m['cuda_peak_allocated_mb']:.1f})")
            lines.append(text)
        return "\n".join(lines)
