"""Process (and CUDA) memory samples, to show that a long run does not grow."""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil
import torch

MB = 1024.0 * 1024.0


@dataclass(frozen=True)
class MemorySample:
    """Memory in MiB at one moment; the CUDA figures are ``None`` off the GPU."""

    rss_mb: float
    cuda_allocated_mb: float | None = None
    cuda_reserved_mb: float | None = None


def sample(device: torch.device) -> MemorySample:
    """The resident set size of this process, plus the CUDA allocator's figures on a GPU."""
    rss = psutil.Process().memory_info().rss / MB
    if device.type != "cuda":
        return MemorySample(rss)
    return MemorySample(
        rss,
        torch.cuda.memory_allocated(device) / MB,
        torch.cuda.memory_reserved(device) / MB,
    )


@dataclass
class MemoryTrace:
    """Samples taken after warm-up and after every round."""

    device: torch.device
    samples: list[MemorySample] = field(default_factory=list)

    def take(self, *_: object) -> None:
        self.samples.append(sample(self.device))

    def as_dict(self) -> dict[str, float | list[float]]:
        """``rss_start_mb``/``rss_end_mb``/``rss_max_mb`` (+ ``cuda_*`` on a GPU), rounded to 0.1 MiB.

        ``rss_trace_mb`` lists every sample (after warm-up, then after each round), so a slow
        leak shows as a rising trace rather than only as an end value.
        """
        if not self.samples:
            return {}
        first, last = self.samples[0], self.samples[-1]
        out = {
            "rss_start_mb": first.rss_mb,
            "rss_end_mb": last.rss_mb,
            "rss_max_mb": max(s.rss_mb for s in self.samples),
        }
        if first.cuda_allocated_mb is not None and last.cuda_allocated_mb is not None:
            out["cuda_allocated_start_mb"] = first.cuda_allocated_mb
            out["cuda_allocated_end_mb"] = last.cuda_allocated_mb
            out["cuda_reserved_start_mb"] = first.cuda_reserved_mb or 0.0
            out["cuda_reserved_end_mb"] = last.cuda_reserved_mb or 0.0
            out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(self.device) / MB
        rounded: dict[str, float | list[float]] = {k: round(v, 1) for k, v in out.items()}
        rounded["rss_trace_mb"] = [round(s.rss_mb, 1) for s in self.samples]
        return rounded
