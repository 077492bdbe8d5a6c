"""``convscope bench --algorithms A,B``: each algorithm's cost as a multiple of a bare forward.

For every round and every decoded frame, in turn (so drift on the machine hits all alike):

* ``network``: the user's plain loop (:class:`convscope.bench.loops.NetworkLoop`: preprocess,
  ``model(x)`` in inference mode, top-1);
* ``engine``: ``Engine.run`` with the predictions only and no algorithm (what every frame pays);
* each algorithm: ``Engine.run`` with that algorithm alone (predictions + its map, rendered and
  copied to the host), with the request's options (steps, samples, top channels ...).

Reported per variant: the median frame time and **cost = median / network median** (1.0 = as
expensive as a bare forward; the dashboard's frame rate with that map on is about 1 / cost of the
network's). Medians over ``rounds * frames`` timings.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from convscope.bench.loops import NetworkLoop
from convscope.engine import Engine, ViewRequest
from convscope.models.bundle import ModelBundle


@dataclass
class AlgorithmCosts:
    model: str
    device: str
    options: tuple
    medians_ms: dict[str, float] = field(default_factory=dict)

    def cost(self, name: str) -> float:
        return self.medians_ms[name] / self.medians_ms["network"]

    def as_dict(self) -> dict:
        return {
            "model": self.model, "device": self.device, "options": dict(self.options),
            "median_ms": self.medians_ms,
            "cost": {name: round(self.cost(name), 3) for name in self.medians_ms},
        }

    def format_text(self) -> str:
        from convscope.algorithms.options import Options

        opts = Options.of(self.options)
        shown = ", ".join(f"{k}={getattr(opts, k)}" for k in ("top_channels", "steps", "samples", "aug_smooth",
                                                             "eigen_smooth"))
        lines = [f"model {self.model} on {self.device}; options {shown}",
                 f"{'variant':<22} {'median ms':>10} {'x forward':>10}"]
        for name, ms in self.medians_ms.items():
            lines.append(f"{name:<22} {ms:>10.1f} {self.cost(name):>10.2f}")
        return "\n".join(lines)


def bench_algorithms(
    bundle: ModelBundle,
    frames: list[np.ndarray],
    names: tuple[str, ...],
    rounds: int = 3,
    warmup: int = 1,
    options: tuple = (),
    optimize: bool = True,
) -> AlgorithmCosts:
    """Median frame time of the bare network, the bare engine and each algorithm alone (interleaved)."""
    network = NetworkLoop(bundle)
    times: dict[str, list[float]] = {"network": [], "engine": [], **{n: [] for n in names}}
    with Engine(bundle, optimize=optimize) as engine:
        requests = {"engine": ViewRequest(algorithms=(), panels=("predictions",), options=options)}
        for n in names:
            requests[n] = ViewRequest(algorithms=(n,), panels=("predictions",), options=options)
        for req in requests.values():
            engine.resolve(req)  # unknown names fail before anything is timed
        for i in range(warmup + rounds):
            for frame in frames:
                for variant in times:
                    t0 = time.perf_counter()
                    if variant == "network":
                        network.step(frame)
                    else:
                        engine.run(frame, requests[variant])
                    if i >= warmup:
                        times[variant].append(time.perf_counter() - t0)
    medians = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return AlgorithmCosts(bundle.name, str(bundle.device), tuple(options), medians)
