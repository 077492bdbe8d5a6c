"""``convscope bench --units`` on a tiny model: it runs the engine and the tracker on the same frames."""

from __future__ import annotations

import torch
from torch import nn

from convscope.bench.units import run_units_bench
from convscope.models import ModelBundle, Preprocessing


def test_units_bench_reports_the_update_against_the_frame(photos):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    bundle = ModelBundle(net, Preprocessing(input_size=(48, 48)), ("a", "b", "c", "d"), "tiny")
    report = run_units_bench(bundle, [photos["chelsea"], photos["coffee"]], count=4, warmup=1)
    assert report.layer == "3" and report.channels == 16 and report.frames == 4
    assert report.frame_ms > 0 and report.update_ms > 0
    assert abs(report.ratio - report.update_ms / report.frame_ms) < 1e-9
    assert "update / frame" in report.format_text()
    # the dashboard path: the same engine with the unit explorer on and off, interleaved
    assert report.grid_layer and report.grid_channels > 0
    assert report.live_on_ms > 0 and report.live_off_ms > 0
    assert abs(report.live_overhead - (report.live_on_ms / report.live_off_ms - 1)) < 1e-9
    assert "units on" in report.format_text()
