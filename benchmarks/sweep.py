"""The architecture sweep on any model names: default layer, layout, Grad-CAM and guided backprop
against independent references, empty panels and errors, as a Markdown table.

    .venv/bin/python benchmarks/sweep.py resnet18 timm:vit_tiny_patch16_224 efficientnet_lite0
    .venv/bin/python benchmarks/sweep.py --pytorch-grad-cam --json sweep.jsonl timm:swin_tiny_patch4_window7_224
    .venv/bin/python benchmarks/sweep.py --tests          # the architectures tests/models/test_sweep.py names

Weights are seeded random (``--weights random``) except for ``efficientnet_lite0`` (its real offline
weights). The checks and references are ``tests/helpers/sweep.py`` (the same code the tests run):

* default layer: the engine's ``default_layer``; "= ref" names the module pytorch-grad-cam's docs
  recommend for the family (or the last spatial output before the pooling) whose output has the
  same values; "!= ref" when none does; "-" when the family has no reference entry;
* gradcam r: Pearson r of the raw Grad-CAM at the default layer against the written-out formula
  with our own hooks (``pgc r``: against pytorch-grad-cam, with ``--pytorch-grad-cam``);
  ``empty`` instead when the reference map is degenerate (all zero, constant, non-finite);
* guided r: guided backprop of the top-1 class against the written-out guided ReLUs;
* kinds: each layer kind found, its picked layer run as ``conv_layer`` and ``cam_layer`` (map-like
  layouts) or ``fc_layer`` (vectors), every panel on, with Grad-CAM and Grad-CAM++ (the default
  request runs every registered algorithm); "worst r" is the lowest Grad-CAM r over those layers;
* empty: panels the engine labelled empty; flat: panels with no spread and no label (a silent
  failure); errors: one line each, with the innermost convscope frame.

Exit status 1 when any model has an error, a default layer that matches no reference, an r below
0.999 where the reference is not degenerate, or a flat unlabelled panel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from helpers.sweep import R_MIN, ModelReport, fmt_r, sweep_model  # noqa: E402
from skimage import data  # noqa: E402


def problems(rep: ModelReport) -> list[str]:
    """What makes a report a failure (the same rules tests/models/test_sweep.py asserts)."""
    out = list(rep.errors)
    if rep.references and rep.default_matches is None:
        out.append(f"default layer {rep.default_layer} != {'/'.join(rep.references)}")
    for run in rep.runs:
        r, deg = run.gradcam_r, run.gradcam_ref_degenerate
        if run.gradcam_shape_ok is False:
            out.append(f"gradcam raw shape at {run.cam_layer} differs from the layer grid")
        elif r is not None and not deg and not (r >= R_MIN):
            out.append(f"gradcam r={fmt_r(r)} at {run.cam_layer}")
        if deg and run.error is None and "map:gradcam" not in run.empty and not run.empty_missing:
            out.append(f"degenerate gradcam at {run.cam_layer} not labelled empty")
        out += [f"{p} flat, not labelled empty (run cam={run.cam_layer})" for p in run.flat_unlabelled]
        out += [f"{p} labelled empty at {run.cam_layer}, reference has structure" for p in run.wrongly_empty]
    if rep.layout and rep.default_ref_layout and rep.layout != rep.default_ref_layout:
        out.append(f"layout {rep.layout}, the reference reads {rep.default_ref_layout}")
    if rep.guided_r is not None and not rep.guided_ref_degenerate and not (rep.guided_r >= R_MIN):
        out.append(f"guided r={fmt_r(rep.guided_r)}")
    return out


def row(rep: ModelReport, pgc: bool) -> str:
    match = "-" if not rep.references else (f"= {rep.default_matches}" if rep.default_matches else "!= ref")
    layout = rep.layout or "?"
    if rep.layout == "tokens":
        layout += f" {rep.grid[0]}x{rep.grid[1]}+{rep.prefix}" if rep.grid else f" +{rep.prefix}"
    base = rep.runs[0] if rep.runs else None
    gc = "empty" if base and base.gradcam_ref_degenerate else fmt_r(rep.gradcam_r)
    gb = "empty" if rep.guided_ref_degenerate else fmt_r(rep.guided_r)
    others = [r.gradcam_r for r in rep.runs[1:] if r.gradcam_r is not None and not r.gradcam_ref_degenerate]
    worst = fmt_r(min(others)) if others and not any(math.isnan(r) for r in others) else (
        "nan" if others else "-")
    kinds = ", ".join(f"{k}:{n}" for k, n in rep.kinds.items())
    empty = ", ".join(rep.empty_panels) or "-"
    flat = ", ".join(sorted({p for r in rep.runs for p in r.flat_unlabelled})) or "-"
    errs = "; ".join(problems(rep)) or "-"
    secs = rep.load_s + rep.init_s + rep.sweep_s + rep.ref_s
    cells = [rep.model, f"`{rep.default_layer}`", match, layout, gc]
    if pgc:
        cells.append(fmt_r(rep.gradcam_pgc_r))
    cells += [gb, worst, kinds, empty, flat, errs, f"{secs:.1f}"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names as load_model takes them (timm:NAME ...)")
    parser.add_argument("--tests", action="store_true", help="add the architectures the sweep test names")
    parser.add_argument("--weights", default=None, help="random (default; the builtin: its real weights) or default")
    parser.add_argument("--input-size", type=int, default=None, help="override the model's input size")
    parser.add_argument("--image", default="chelsea", help="a skimage.data photo (chelsea, coffee, astronaut)")
    parser.add_argument("--pytorch-grad-cam", action="store_true", help="also compare with pytorch-grad-cam")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", default=None, help="append one JSON line per model to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    todo: list[tuple[str, int | None]] = [(m, args.input_size) for m in args.models]
    if args.tests:
        from models.test_sweep import ARCHS

        todo += [(a.spec, args.input_size or a.input_size) for a in ARCHS]
    if not todo:
        parser.error("name at least one model (or --tests)")
    image = getattr(data, args.image)()[..., :3]
    head = ["model", "default layer", "reference", "layout", "gradcam r"]
    if args.pytorch_grad_cam:
        head.append("pgc r")
    head += ["guided r", "worst r (kinds)", "kinds", "empty", "flat", "problems", "s"]
    print("| " + " | ".join(head) + " |", flush=True)
    print("|" + "---|" * len(head), flush=True)
    failed = 0
    t0 = time.perf_counter()
    for spec, size in todo:
        rep = sweep_model(spec, image, weights=args.weights, input_size=size,
                          pytorch_grad_cam=args.pytorch_grad_cam)
        print(row(rep, args.pytorch_grad_cam), flush=True)
        failed += bool(problems(rep))
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(dataclasses.asdict(rep) | {"problems": problems(rep)}, default=str) + "\n")
    print(f"\n{len(todo)} models, {failed} with problems, {time.perf_counter() - t0:.0f} s "
          f"(torch threads {torch.get_num_threads()})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
