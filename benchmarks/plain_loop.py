"""A plain eager classification loop, written without convscope.bench, to check its network FPS.

What a user's own loop does with a 640x480 RGB frame: upload, resize to the model's input size,
normalise, ``model(x)`` under ``torch.inference_mode``, top-1 to the host with ``.item()``.
Only the model itself comes from convscope (``load_model``), so both measure the same network.

    .venv/bin/python benchmarks/plain_loop.py -m resnet50 --weights random --frames 60 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

from convscope.models import load_model

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def photos(width: int = 640, height: int = 480) -> list[np.ndarray]:
    """The skimage test photos, stretched to the demo source's frame size."""
    out = []
    for name in PHOTOS:
        image = Image.fromarray(np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]))
        out.append(np.array(image.resize((width, height), Image.Resampling.BILINEAR)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=60, help="timed frames")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bundle = load_model(args.model, weights=args.weights, device=args.device)
    model, device, prep = bundle.module, bundle.device, bundle.preprocessing
    mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1)
    size = tuple(prep.input_size)
    mode = "bicubic" if prep.interpolation == "bicubic" else "bilinear"
    frames = photos()

    def classify(frame: np.ndarray) -> int:
        with torch.inference_mode():
            x = torch.from_numpy(frame).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0
            x = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
            x = (x - mean) / std
            return int(model(x).argmax(1)[0].item())

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(args.warmup):
        classify(frames[i % len(frames)])
    times = []
    for i in range(args.frames):
        sync()
        t0 = time.perf_counter()
        classify(frames[i % len(frames)])
        sync()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    out = {
        "model": bundle.name, "device": str(device), "frames": len(times),
        "plain_fps": round(1.0 / median, 3), "mean_fps": round(len(times) / sum(times), 3),
        "frame_ms": round(median * 1000.0, 3), "threads": torch.get_num_threads(),
    }
    print(json.dumps(out) if args.json else
          f"{out['model']} on {out['device']}: plain eager loop {out['plain_fps']:.2f} FPS "
          f"(median {out['frame_ms']:.1f} ms over {out['frames']} frames, {out['threads']} threads)")


if __name__ == "__main__":
    main()
