"""The unit explorer's update in the dashboard's frame, in steady state: a folder of 3 photos in a loop.

Per frame the same engine runs with the unit explorer on (a bound ``UnitsSession``, as ``convscope
live`` runs it) and off, interleaved; after ``--warmup`` frames, reports the medians of both frames
and of the session's own update time (``UnitsSession.update_s``: the top-k update of every channel of
the activation grid's layer, inside the frame).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/units_steady.py -m efficientnet_lite0 --input-size 128
"""

from __future__ import annotations

import argparse
import statistics
import time

from skimage import data

from convscope.bench.config import dashboard_request
from convscope.engine import Engine
from convscope.models import load_model
from convscope.units.session import UnitsSession
from convscope.views.units import bind, unbind


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", default="efficientnet_lite0")
    p.add_argument("--device", default="cpu")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args()
    bundle = load_model(args.model, device=args.device, input_size=args.input_size)
    engine = Engine(bundle)
    req = engine.resolve(dashboard_request(engine.layers, bundle.num_classes))
    session = UnitsSession(bundle, engine.layer_info)
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    on, off = [], []
    for i in range(args.frames):
        session.frame_index = i % len(photos)  # a folder in a loop: the same items again
        bind(engine.layer_info, session)
        t0 = time.perf_counter()
        engine.run(photos[i % len(photos)], req)
        t1 = time.perf_counter()
        unbind(engine.layer_info)
        engine.run(photos[i % len(photos)], req)
        t2 = time.perf_counter()
        if i >= args.warmup:
            on.append(t1 - t0)
            off.append(t2 - t1)
    update = list(session.update_s)[args.warmup:]
    u, fo, ff = statistics.median(update) * 1e3, statistics.median(on) * 1e3, statistics.median(off) * 1e3
    print(f"{bundle.name}, grid layer {req.conv_layer}: frame on {fo:.1f} ms, off {ff:.1f} ms, "
          f"update {u:.2f} ms = {100 * u / ff:.2f} % of the frame")


if __name__ == "__main__":
    main()
