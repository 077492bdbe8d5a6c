"""convscope's feature visualisation against torch-lucent's, on the same units, steps and size.

torch-lucent is not a dependency (it pins kornia 0.4.1 and pulls coveralls, pydantic, rich ... into
the environment): install it apart and put it on the path only for this script, e.g.

    .venv/bin/pip install --no-deps --target /tmp/lucent torch-lucent kornia==0.4.1 decorator
    PYTHONPATH=$PWD:/tmp/lucent .venv/bin/python benchmarks/featvis_vs_lucent.py --steps 64 --size 96

Both optimise the channel's mean activation with Adam (lr 0.05) over a decorrelated Fourier
parametrisation with lucid's standard transforms; lucent gets the model's own normalisation and no
upsampling (``fixed_image_size`` = size), so both see the same input size. Each image is then scored
on a clean forward (no transforms): the unit's mean activation, against the best of 8 random images
and of 4 photos. Reports per unit: convscope, lucent, their ratio, and the baselines; and the mean
activation of each image on the *other* units (how specific each image is).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from skimage import data

from convscope.models import load_model
from convscope.models.layers import discover_layers
from convscope.models.preprocess import frame_to_tensor, resize_crop
from convscope.units.featvis import FeatureVis, channel_activation


def lucent_image(bundle, layer: str, channel: int, steps: int, size: int, seed: int) -> np.ndarray:
    from lucent.optvis import param, render, transform

    torch.manual_seed(seed)
    mean = torch.tensor(bundle.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(bundle.preprocessing.std).view(1, 3, 1, 1)
    transforms = [*transform.standard_transforms, lambda x: (x - mean.to(x.device)) / std.to(x.device)]
    images = render.render_vis(bundle.module, f"{layer.replace('.', '_')}:{channel}",
                               param_f=lambda: param.image(size, fft=True, decorrelate=True),
                               transforms=transforms, thresholds=(steps,), preprocess=False, progress=False,
                               show_image=False, fixed_image_size=size)
    return images[-1][0]  # H x W x 3 in [0, 1]


def score(bundle, layer, channels, image01: torch.Tensor) -> list[float]:
    with torch.no_grad():
        return [float(channel_activation(bundle, layer, c, image01)) for c in channels]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", default="efficientnet_lite0")
    p.add_argument("--layer", default="blocks.3.0.bn1")
    p.add_argument("--channels", default="7,12,30")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    bundle = load_model(args.model, input_size=args.size)
    layer = {la.name: la for la in discover_layers(bundle)}[args.layer]
    channels = [int(c) for c in args.channels.split(",")]
    gen = torch.Generator().manual_seed(0)
    randoms = torch.rand(8, 3, args.size, args.size, generator=gen)
    photos = torch.cat([resize_crop(frame_to_tensor(im, torch.device("cpu")), bundle.preprocessing) / 255
                        for im in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket())])
    rows = []
    for c in channels:
        t0 = time.perf_counter()
        ours = FeatureVis(bundle).render(layer, c, steps=args.steps, size=args.size)
        t1 = time.perf_counter()
        theirs = lucent_image(bundle, args.layer, c, args.steps, args.size, seed=0)
        t2 = time.perf_counter()
        ours_t = torch.as_tensor(ours).permute(2, 0, 1)[None].float() / 255
        theirs_t = torch.as_tensor(np.ascontiguousarray(theirs)).permute(2, 0, 1)[None].float()
        a_ours, a_theirs = score(bundle, layer, channels, ours_t), score(bundle, layer, channels, theirs_t)
        i = channels.index(c)
        with torch.no_grad():
            rnd = float(channel_activation(bundle, layer, c, randoms).max())
            pho = float(channel_activation(bundle, layer, c, photos).max())
        rows.append({"channel": c, "convscope": round(a_ours[i], 4), "lucent": round(a_theirs[i], 4),
                     "ratio": round(a_ours[i] / a_theirs[i], 3) if a_theirs[i] else None,
                     "best_random": round(rnd, 4), "best_photo": round(pho, 4),
                     "convscope_on_others": [round(v, 3) for j, v in enumerate(a_ours) if j != i],
                     "lucent_on_others": [round(v, 3) for j, v in enumerate(a_theirs) if j != i],
                     "seconds": [round(t1 - t0, 1), round(t2 - t1, 1)]})
        print(json.dumps(rows[-1]), flush=True)
    if not args.json:
        print(f"{args.model} {args.layer}, {args.steps} steps at {args.size} px: "
              f"median convscope / lucent = {np.median([r['ratio'] for r in rows if r['ratio']]):.3f}")


if __name__ == "__main__":
    main()
