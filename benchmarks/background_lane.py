"""The dashboard's frame rate with an expensive map in the frame loop and in the background lane.

    python benchmarks/background_lane.py [--model efficientnet_lite0] [--seconds 20] [--maps integrated_gradients]

Runs the real pipeline (engine thread, encoder thread, no browser) on the demo source with
Grad-CAM plus the given row maps, alternating windows of ``--seconds`` (every map every frame,
then the background lane, then again), and prints the published frames per second of each, the
background maps' updates per second and their mean age in frames. Side by side in one run, so
the ratio holds on a busy machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convscope.engine import Engine  # noqa: E402
from convscope.models import load_model  # noqa: E402
from convscope.server.dashboard import make_dashboard  # noqa: E402
from convscope.server.lanes import background_engine_factory  # noqa: E402
from convscope.server.security import Guard  # noqa: E402
from convscope.sources import open_source  # noqa: E402


def window(bundle, engine, maps: tuple[str, ...], background: bool, seconds: float) -> dict:
    source = open_source("demo", realtime=True)
    dash = make_dashboard(engine, source, Guard(None, True), net_probe=False,
                          background=background_engine_factory(bundle) if background else None,
                          background_share=0.0)
    pipe = dash.pipeline
    frames: list = []
    pipe.set_publisher(frames.append)
    pipe.update(replace(pipe.state, algorithms=("gradcam", *maps)))
    pipe.start()
    time.sleep(3.0)  # warm-up (and the background engine's start)
    start = len(frames)
    time.sleep(seconds)
    got = frames[start:]
    pipe.stop(timeout=10)
    source.close()
    ages, updates = [], set()
    for f in got:
        for name, info in f.meta.get("background", {}).items():
            if not info["pending"]:
                ages.append(info["frames_old"])
                updates.add((name, info["ms"]))  # a new background result has a new cost
    return {"fps": len(got) / seconds, "bg_updates_per_s": len(updates) / seconds,
            "mean_age": statistics.fmean(ages) if ages else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--maps", default="integrated_gradients", help="comma-separated row maps")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    maps = tuple(m for m in args.maps.split(",") if m)
    bundle = load_model(args.model, device="cpu")
    rows: dict[str, list[dict]] = {"every frame": [], "background": []}
    with Engine(bundle) as engine:
        for _ in range(args.rounds):
            rows["every frame"].append(window(bundle, engine, maps, False, args.seconds))
            rows["background"].append(window(bundle, engine, maps, True, args.seconds))
    print(f"{args.model}, Grad-CAM + {', '.join(maps)}, demo source, {args.rounds} x {args.seconds:.0f} s windows each")
    print(f"{'lane':<12} {'dashboard fps':>14} {'bg updates/s':>13} {'mean age':>9}")
    for name, runs in rows.items():
        fps = statistics.fmean(r["fps"] for r in runs)
        upd = statistics.fmean(r["bg_updates_per_s"] for r in runs)
        ages = [r["mean_age"] for r in runs if r["mean_age"] is not None]
        age = f"{statistics.fmean(ages):.1f}" if ages else "-"
        print(f"{name:<12} {fps:>14.2f} {upd:>13.2f} {age:>9}")
    ratio = statistics.fmean(r["fps"] for r in rows["background"]) / max(
        1e-9, statistics.fmean(r["fps"] for r in rows["every frame"]))
    print(f"background / every frame: {ratio:.2f}x the frame rate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
