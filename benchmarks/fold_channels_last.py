"""What the engine's private model copy buys: BatchNorm folding and channels_last, step by step.

For one model, four variants run interleaved on the same real photo (skimage's chelsea): the
model as loaded, a channels_last copy, a folded copy (contiguous), and the folded channels_last
copy the engine runs (``convscope.engine.fastmodel.prepare``). Each is timed for an inference
forward and for a forward plus one input-gradient backward (the floor of the gradient views).
Medians over ``--repeats`` turns; ratios are against the model as loaded.

    .venv/bin/python benchmarks/fold_channels_last.py -m efficientnet_lite0 --threads 1
    .venv/bin/python benchmarks/fold_channels_last.py -m resnet50 --weights random --threads 1 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import skimage.data
import torch
from torch import nn

from convscope.engine.engine import _logits
from convscope.engine.fastmodel import FastModel, prepare
from convscope.models import load_model
from convscope.models.preprocess import to_input


def _time(module: nn.Module, x: torch.Tensor, grad: bool) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    if grad:
        xg = x.detach().clone().requires_grad_()
        out = _logits(module(xg))
        torch.autograd.grad(out[0].max(), [xg])
    else:
        with torch.inference_mode():
            module(x)
    sync()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_model(args.model, weights=args.weights, device=args.device)
    module = bundle.module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    x = to_input(skimage.data.chelsea(), bundle.preprocessing, bundle.device)
    variants: dict[str, FastModel] = {
        "as loaded": FastModel(module, {}, False, "as loaded"),
        "channels_last": prepare(module, x, _logits, fold=False),
        "folded": prepare(module, x, _logits, channels_last=False),
        "folded + channels_last": prepare(module, x, _logits),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"forward": [], "forward+backward": []} for k in variants}
    for _ in range(2):  # warm-up
        for fast in variants.values():
            _time(fast.module, fast.input(x), False)
            _time(fast.module, fast.input(x), True)
    for _ in range(args.repeats):
        for name, fast in variants.items():
            times[name]["forward"].append(_time(fast.module, fast.input(x), False))
            times[name]["forward+backward"].append(_time(fast.module, fast.input(x), True))
    base = {k: statistics.median(v) for k, v in times["as loaded"].items()}
    rows = []
    for name, fast in variants.items():
        med = {k: statistics.median(v) for k, v in times[name].items()}
        rows.append({
            "variant": name, "note": fast.note,
            **{f"{k}_ms": round(v * 1e3, 2) for k, v in med.items()},
            **{f"{k}_speedup": round(base[k] / v, 3) for k, v in med.items()},
        })
    if args.json:
        print(json.dumps({"model": bundle.name, "device": str(bundle.device),
                          "threads": torch.get_num_threads(), "rows": rows}))
        return
    print(f"{bundle.name} on {bundle.device}, {torch.get_num_threads()} threads, median of {args.repeats}")
    for r in rows:
        print(f"{r['variant']:<24} forward {r['forward_ms']:8.1f} ms (x{r['forward_speedup']:.2f})   "
              f"forward+backward {r['forward+backward_ms']:8.1f} ms (x{r['forward+backward_speedup']:.2f})"
              f"   [{r['note']}]")


if __name__ == "__main__":
    main()
