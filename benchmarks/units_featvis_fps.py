"""What the background feature visualisation costs the dashboard: frames per second with it running
and without, in one run, in alternating windows (the machine's noise cancels in the ratio).

The frame loop is the dashboard's engine thread: ``Engine.run`` of the request a fresh dashboard
sends, with the unit explorer on (a bound :class:`~convscope.units.session.UnitsSession`, as
``convscope live`` runs it), back to back on a few photos. In the "on" windows a
:class:`~convscope.units.session.FeatVisWorker` (its defaults: one torch thread, at most ``share``
of the wall clock, a copy of the model) optimises one unit of the activation grid's layer for the
whole window; in the "off" windows it is stopped. Reports FPS off and on, their ratio, and the
worker's optimisation steps per second.

    .venv/bin/python benchmarks/units_featvis_fps.py -m efficientnet_lite0 --input-size 128
    .venv/bin/python benchmarks/units_featvis_fps.py --device cuda --input-size 224 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from skimage import data

from convscope.bench.config import dashboard_request
from convscope.engine import Engine
from convscope.models import load_model
from convscope.units.session import FeatVisWorker, UnitsSession
from convscope.views.units import bind, unbind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--window", type=float, default=8.0, help="seconds per window (default: 8)")
    parser.add_argument("--pairs", type=int, default=3, help="off/on window pairs (default: 3)")
    parser.add_argument("--share", type=float, default=0.25, help="the worker's wall-clock share (default: 0.25)")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    bundle = load_model(args.model, args.weights, args.device, input_size=args.input_size)
    dev = bundle.device
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    engine = Engine(bundle)
    request = engine.resolve(dashboard_request(engine.layers, bundle.num_classes))
    session = UnitsSession(bundle, engine.layer_info)
    bind(engine.layer_info, session)
    layer = engine.layer_info[request.conv_layer]
    count = [0]

    def frames_for(seconds: float) -> float:
        sync()
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < seconds:
            session.frame_index = count[0]
            engine.run(photos[count[0] % len(photos)], request)
            count[0] += 1
            n += 1
        sync()
        return n / (time.perf_counter() - t0)

    frames_for(2.0)  # warm-up
    off, on, steps_per_s = [], [], []
    channel = 0
    try:
        for _ in range(args.pairs):
            off.append(frames_for(args.window))
            worker = FeatVisWorker(bundle, steps=args.steps * 1000, size=args.size, share=args.share)
            worker._model()  # the model copy, outside the window
            worker.request(layer, channel)
            while (st := worker.state(layer.name, channel)) is None or st["state"] != "running":
                time.sleep(0.01)
            s0 = worker.state(layer.name, channel)["step"]
            on.append(frames_for(args.window))
            steps_per_s.append((worker.state(layer.name, channel)["step"] - s0) / args.window)
            worker.stop(5.0)
            channel += 1  # a fresh unit each time: never a cache hit
    finally:
        unbind(engine.layer_info)
        engine.close()
    report = {
        "model": bundle.name, "device": str(dev), "layer": layer.name, "threads": torch.get_num_threads(),
        "share": args.share, "window_s": args.window, "pairs": args.pairs,
        "fps_off": round(statistics.median(off), 3), "fps_on": round(statistics.median(on), 3),
        "ratio_on_off": round(statistics.median(a / b for a, b in zip(on, off, strict=True)), 4),
        "featvis_steps_per_s": round(statistics.median(steps_per_s), 3),
        "windows_off": [round(v, 3) for v in off], "windows_on": [round(v, 3) for v in on],
    }
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:22s} {v}")


if __name__ == "__main__":
    main()
