"""``convscope bench --units``: what the live top-k update costs per frame, against the frame itself.

Per frame, interleaved on the same decoded frames: the dashboard's engine frame (the view set a fresh
dashboard computes) is timed, then the unit tracker's update for every channel of the default layer
(max and argmax per channel, de-duplication, receptive-field boxes, crops of the winners) on that
frame's activation. The activation itself is not charged to the tracker: the dashboard's forward
already computes it. Medians of both and their ratio are reported.

Then the dashboard's own path, interleaved on the same frames: the engine frame with the unit
explorer on (a :class:`~convscope.units.session.UnitsSession` bound to the engine, so the ``units``
view updates the activation grid's layer inside the frame, as ``convscope live`` does) against the
same engine frame with it off: ``live_overhead`` is their ratio minus one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from convscope.models import ModelBundle
from convscope.models.layers import default_layer, discover_layers
from convscope.models.preprocess import frame_to_tensor, normalize, resize_crop
from convscope.units.receptive_field import receptive_field
from convscope.units.topk import TopKTracker


@dataclass
class UnitsBenchReport:
    model: str
    device: str
    layer: str
    channels: int
    frames: int
    frame_ms: float  # median dashboard (engine) frame
    update_ms: float  # median tracker update
    ratio: float  # update / frame
    tracker_mb: float
    receptive_field: str
    grid_layer: str = ""  # the layer the dashboard's unit explorer tracks (the activation grid's)
    grid_channels: int = 0
    live_on_ms: float = 0.0  # median engine frame with the unit explorer on
    live_off_ms: float = 0.0  # ... and off, interleaved
    live_overhead: float = 0.0  # on / off - 1

    def format_text(self) -> str:
        return (f"units bench: {self.model} on {self.device}, layer {self.layer} ({self.channels} channels, "
                f"receptive field by {self.receptive_field}), {self.frames} frames\n"
                f"  dashboard frame   {self.frame_ms:8.2f} ms (median)\n"
                f"  top-k update      {self.update_ms:8.2f} ms (median)\n"
                f"  update / frame    {self.ratio * 100:8.2f} %\n"
                f"  tracker memory    {self.tracker_mb:8.1f} MB\n"
                f"dashboard path: unit explorer on the grid layer {self.grid_layer} ({self.grid_channels} channels)\n"
                f"  frame, units off  {self.live_off_ms:8.2f} ms (median)\n"
                f"  frame, units on   {self.live_on_ms:8.2f} ms (median)\n"
                f"  overhead          {self.live_overhead * 100:8.2f} %")

    def as_dict(self) -> dict:
        return asdict(self)


def run_units_bench(bundle: ModelBundle, frames: Sequence[np.ndarray], count: int = 60, k: int = 9,
                    patch: int = 48, warmup: int = 3) -> UnitsBenchReport:
    from convscope.bench.config import dashboard_request
    from convscope.engine import Engine

    device = bundle.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    layers = discover_layers(bundle)
    layer = default_layer(layers)
    rf = receptive_field(bundle, layer)
    tracker = TopKTracker(int(layer.channels), k, rf=rf, patch=patch, device=device)
    engine = Engine(bundle)
    got: list[torch.Tensor] = []
    handle = dict(bundle.module.named_modules())[layer.name].register_forward_hook(lambda _m, _i, o: got.append(o))
    from convscope.units.session import UnitsSession
    from convscope.views.units import bind, unbind

    session = UnitsSession(bundle, engine.layer_info, k=k, patch=patch)
    frame_t, update_t, on_t, off_t = [], [], [], []
    try:
        request = engine.resolve(dashboard_request(engine.layers, bundle.num_classes))
        for i in range(warmup + count):
            frame = frames[i % len(frames)]
            sync()
            t0 = time.perf_counter()
            engine.run(frame, request)
            sync()
            t1 = time.perf_counter()
            got.clear()
            with torch.inference_mode():
                x255 = resize_crop(frame_to_tensor(frame, device), bundle.preprocessing)
                bundle.module(normalize(x255, bundle.preprocessing))
                acts = layer.as_map(got[0])
                sync()
                t2 = time.perf_counter()
                tracker.update(acts, [i], images=x255)
                sync()
                t3 = time.perf_counter()
            session.frame_index = i
            bind(engine.layer_info, session)
            try:
                sync()
                t4 = time.perf_counter()
                engine.run(frame, request)
                sync()
                t5 = time.perf_counter()
            finally:
                unbind(engine.layer_info)
            engine.run(frame, request)
            sync()
            t6 = time.perf_counter()
            if i >= warmup:
                frame_t.append(t1 - t0)
                update_t.append(t3 - t2)
                on_t.append(t5 - t4)
                off_t.append(t6 - t5)
    finally:
        handle.remove()
        engine.close()
    fm, um = statistics.median(frame_t) * 1e3, statistics.median(update_t) * 1e3
    on, off = statistics.median(on_t) * 1e3, statistics.median(off_t) * 1e3
    grid = engine.layer_info[request.conv_layer] if request.conv_layer else None
    return UnitsBenchReport(bundle.name, str(device), layer.name, int(layer.channels), count, fm, um, um / fm,
                            tracker.nbytes / 2**20, rf.method, grid.name if grid else "",
                            int(grid.channels or 0) if grid else 0, on, off, on / off - 1)
