"""Per-frame cost of the renderer's steps (what ``Engine._render`` does), one thread, CPU.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/render_cost.py [--repeat 200] [--old OLD_RENDER.py]

``--old`` times another ``render.py`` (e.g. ``git show REV:convscope/engine/render.py >
/tmp/render_old.py``) in the same process, interleaved round by round, for a side-by-side ratio.

Times, in milliseconds (median of ``--repeat`` runs after a warm-up), the paths a live frame takes:

* ``heatmap``   a 7x7 Grad-CAM map upsampled to 224x224, normalised, coloured, blended;
* ``gradient``  a 3x224x224 input gradient as the RGB gradient image (guided backprop);
* ``magnitude`` a 3x224x224 input gradient as max |value| per pixel, normalised, coloured;
* ``mosaic``    a 1280x7x7 layer normalised per channel and tiled 512 px wide;
* ``fc``        1000 values normalised and drawn as 8 px cells.

Each path includes the per-map value range (``render.value_range``) where the renderer has it:
that is what the engine packs to tell a blank map from a real one. The machines are shared:
compare numbers from one run of this script (or runs a minute apart), not across days.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time

import torch

from convscope import render as current


def _load(path: str):
    spec = importlib.util.spec_from_file_location("render_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_old"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _median_ms(fns, repeat: int) -> list[float]:
    """Median ms of each function, interleaved call by call (so noise hits all alike)."""
    for fn in fns:
        for _ in range(5):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for t, fn in zip(times, fns, strict=True):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) * 1000.0 for t in times]


def paths(render) -> dict:
    """The renderer's per-frame paths as closures over fixed inputs."""
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 224, 224, 3), dtype=torch.uint8, generator=g)
    cam = torch.rand(1, 7, 7, generator=g)
    grad = torch.randn(1, 3, 224, 224, generator=g)
    acts = torch.randn(1, 1280, 7, 7, generator=g).clamp_(min=0)
    fc = torch.randn(1, 1000, generator=g)
    has_range = hasattr(render, "value_range")

    def heatmap():
        if has_range:
            render.value_range(cam, (-2, -1))
        up = render.resize(cam, (224, 224))
        heat = render.colorize(render.normalize(up, (-2, -1)), "jet")
        render.overlay(heat, image)

    def gradient():
        if has_range:
            lo, hi = render.value_range(grad, (-3, -2, -1))
            render.gradient_image(grad, lo=lo, hi=hi)
        else:
            render.gradient_image(grad)

    def magnitude():
        m = render.magnitude(grad)
        if has_range:
            render.value_range(grad, (-3, -2, -1))
        render.colorize(render.normalize(m, (-2, -1)), "jet")

    grid = render.mosaic_grid(1280, 7, 7, 512)

    def mosaic():
        lo, hi = acts.amin(dim=(-2, -1), keepdim=True), acts.amax(dim=(-2, -1), keepdim=True)
        render.tile(render.normalize(acts, lo=lo, hi=hi), grid, "jet")

    cells = render.fc_grid(1000, 8)

    def fc_map():
        render.cells(render.normalize(fc, (1,)), cells, "jet")

    return {"heatmap": heatmap, "gradient": gradient, "magnitude": magnitude, "mosaic": mosaic, "fc": fc_map}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--old", metavar="RENDER_PY", help="another render.py to time side by side")
    args = parser.parse_args()
    torch.set_num_threads(1)
    modules = [current] + ([_load(args.old)] if args.old else [])
    sets = [paths(m) for m in modules]
    head = "current" + ("      old   ratio" if args.old else "")
    print(f"torch {torch.__version__}, 1 thread, median of {args.repeat} (ms)\n{'path':<10} {head}")
    for name in sets[0]:
        ms = _median_ms([s[name] for s in sets], args.repeat)
        extra = f" {ms[1]:8.3f} {ms[0] / ms[1]:7.2f}" if args.old else ""
        print(f"{name:<10} {ms[0]:7.3f}{extra}")



if __name__ == "__main__":
    main()
