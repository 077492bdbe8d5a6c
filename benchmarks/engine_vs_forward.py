"""Engine cost against the bare network, side by side, as ratios (the machine's noise cancels).

Each round times, one after the other on the same frame: the bare forward (upload, resize,
normalise, ``model(x)`` under ``inference_mode``, top-1 to the host) and each engine variant.
Reports per-variant median seconds, the ratio ``bare / variant`` (the fraction of the bare
network's FPS the variant keeps) and the engine's own per-stage medians.

    .venv/bin/python benchmarks/engine_vs_forward.py -m resnet50 --weights random --rounds 15
    .venv/bin/python benchmarks/engine_vs_forward.py --threads 1   # steadier on a shared machine
    .venv/bin/python benchmarks/engine_vs_forward.py --device cuda --strategies   # GPU: both strategies
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from skimage import data

from convscope.engine import Engine, Target, ViewRequest
from convscope.models import load_model
from convscope.models.preprocess import to_input


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="resnet50")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--strategies", action="store_true", help="also time both backward strategies")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 gives steadier ratios on a busy machine)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bundle = load_model(args.model, weights=args.weights, device=args.device)
    device = bundle.device
    frame = data.chelsea()
    module, prep = bundle.module, bundle.preprocessing

    def bare() -> None:
        with torch.inference_mode():
            int(module(to_input(frame, prep, device)).argmax())

    engine = Engine(bundle, render_threads=None if args.threads else 1)
    last_conv = engine.conv_layers[-1].name
    variants: dict[str, ViewRequest] = {
        "activations": ViewRequest(algorithms=()),
        "gradcam": ViewRequest(algorithms=("gradcam",)),
        "full (gb=class)": ViewRequest(),
        "full (gb=channel)": ViewRequest(selection_target=Target("channel", 0, last_conv)),
    }
    strategies = ["auto"]
    if args.strategies:
        strategies = ["sequential", "batched"]
    times: dict[str, list[float]] = {"bare": []}
    stages: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.warmup):
        bare()
        for req in variants.values():
            engine.run(frame, req)
    for _ in range(args.rounds):
        _sync(device)
        t = time.perf_counter()
        bare()
        _sync(device)
        times["bare"].append(time.perf_counter() - t)
        for strategy in strategies:
            engine.strategy = strategy  # type: ignore[assignment]
            for name, req in variants.items():
                key = name if strategy == "auto" else f"{name} [{strategy}]"
                _sync(device)
                t = time.perf_counter()
                res = engine.run(frame, req)
                times.setdefault(key, []).append(time.perf_counter() - t)
                for stage, sec in res.timings.items():
                    stages.setdefault(key, {}).setdefault(stage, []).append(sec)
    engine.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "model": bundle.name,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "median_s": med,
        "ratio_vs_bare": {k: med["bare"] / v for k, v in med.items() if k != "bare"},
        "stage_median_s": {k: {s: statistics.median(v) for s, v in st.items()} for k, st in stages.items()},
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['model']} on {report['device']} ({report['threads']} threads), {args.rounds} rounds")
    print(f"{'variant':34s} {'median ms':>9s} {'x bare FPS':>10s}   stages (ms)")
    print(f"{'bare forward':34s} {med['bare'] * 1e3:9.1f} {1.0:10.2f}")
    for key in med:
        if key == "bare":
            continue
        st = " ".join(f"{s}={v * 1e3:.1f}" for s, v in report["stage_median_s"][key].items())
        print(f"{key:34s} {med[key] * 1e3:9.1f} {report['ratio_vs_bare'][key]:10.2f}   {st}")


if __name__ == "__main__":
    main()
