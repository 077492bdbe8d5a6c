"""Per-image Grad-CAM time: convscope's engine vs pytorch-grad-cam, same model, layer, CPU, batch.

Not a test: timings depend on the machine. Both sides get the same decoded RGB images of one
folder (32 crops and flips of scikit-image photos unless ``--folder`` is given), the same
preprocessing (convscope's, resize to the model's input size and normalise), the same target layer
(the model's last conv layer) and the same batch size, and both produce, per image, the Grad-CAM
heatmap at the input size and its overlay on the input (``show_cam_on_image`` for
pytorch-grad-cam, as its ``cam.py`` does). Runs are interleaved in one process and the median of
``--repeats`` runs is reported.

pytorch-grad-cam is timed as people use it, on the model with trainable parameters (its
backward then also computes weight gradients), and, for transparency, on a frozen copy with
``compute_input_gradient=True`` (the cheapest way it can build a graph without weight gradients).

Usage:
    .venv/bin/python benchmarks/gradcam_vs_pytorch_gradcam.py [--models resnet50,efficientnet_lite0]
        [--batch-size 8] [--repeats 5] [--folder DIR]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from convscope.engine import Engine, ViewRequest
from convscope.models import discover_layers, load_model
from convscope.models.preprocess import to_input
from convscope.stills.inputs import expand_input, load_item


def make_folder(root: Path) -> Path:
    """32 distinct images: crops and flips of four scikit-image photos."""
    from PIL import Image
    from skimage import data

    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        img = getattr(data, name)()
        h, w = img.shape[:2]
        variants = [img, img[:, ::-1], img[: h * 3 // 4, : w * 3 // 4], img[h // 4 :, w // 4 :],
                    img[h // 8 : h * 7 // 8, w // 8 : w * 7 // 8], img[::-1, : w // 2], img[::2, ::2],
                    img[h // 4 :, : w * 3 // 4][:, ::-1]]
        for i, v in enumerate(variants):
            Image.fromarray(np.ascontiguousarray(v)).save(root / f"{name}_{i}.png")
    return root


def batches(frames: list[np.ndarray], size: int) -> list[list[np.ndarray]]:
    return [frames[i : i + size] for i in range(0, len(frames), size)]


class Ours:
    """convscope: the engine exactly as ``convscope gradcam --top-k 1`` drives it."""

    def __init__(self, bundle, layer: str, batch_size: int):
        self.engine = Engine(bundle)
        self.request = ViewRequest(cam_layer=layer, algorithms=("gradcam",), panels=("predictions",), top_k=5)
        self.batch_size = batch_size

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for batch in batches(frames, self.batch_size):
            out += [r.maps["gradcam"].overlay for r in self.engine.run_batch(batch, self.request)]
        return out


class Theirs:
    """pytorch-grad-cam's ``GradCAM`` with ``show_cam_on_image`` overlays."""

    def __init__(self, bundle, layer: str, batch_size: int, trainable: bool):
        from pytorch_grad_cam import GradCAM

        model = copy.deepcopy(bundle.module)
        model.requires_grad_(trainable)
        self.cam = GradCAM(model=model, target_layers=[dict(model.named_modules())[layer]])
        self.cam.compute_input_gradient = not trainable  # GradCAM's constructor does not pass it on
        self.prep, self.device, self.batch_size = bundle.preprocessing, bundle.device, batch_size

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        from pytorch_grad_cam.utils.image import show_cam_on_image

        out = []
        for batch in batches(frames, self.batch_size):
            x = torch.cat([to_input(f, self.prep, self.device) for f in batch])
            cams = self.cam(input_tensor=x, targets=None)
            seen = x * torch.tensor(self.prep.std).view(1, 3, 1, 1) + torch.tensor(self.prep.mean).view(1, 3, 1, 1)
            rgb = seen.clamp(0, 1).permute(0, 2, 3, 1).numpy()
            out += [show_cam_on_image(img, cam, use_rgb=True) for img, cam in zip(rgb, cams, strict=True)]
        return out


def bench_model(spec: str, frames: list[np.ndarray], batch_size: int, repeats: int) -> dict[str, float]:
    weights = "default" if spec == "efficientnet_lite0" else "random"
    bundle = load_model(spec, weights=weights, device="cpu")
    layer = [la for la in discover_layers(bundle) if la.kind == "conv"][-1].name
    runners = {
        "convscope": Ours(bundle, layer, batch_size),
        "pytorch-grad-cam": Theirs(bundle, layer, batch_size, trainable=True),
        "pytorch-grad-cam (frozen, input grad)": Theirs(bundle, layer, batch_size, trainable=False),
    }
    for run in runners.values():  # warm-up: allocator, oneDNN kernels, first-call costs
        run(frames[:batch_size])
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():  # interleaved, so drifting machine load hits all alike
            t0 = time.perf_counter()
            outs = run(frames)
            times[name].append((time.perf_counter() - t0) / len(frames))
            assert len(outs) == len(frames) and outs[0].dtype == np.uint8
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\n{bundle.name}, layer {layer}, {len(frames)} images, batch {batch_size}, "
          f"{torch.get_num_threads()} threads, median of {repeats}:")
    for name, m in med.items():
        print(f"  {name:<40} {m * 1000:8.1f} ms/image")
    for name in list(runners)[1:]:
        print(f"  ratio convscope / {name}: {med['convscope'] / med[name]:.2f}")
    return med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,efficientnet_lite0")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--folder", type=Path, help="a folder of images (default: 32 made from scikit-image photos)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or make_folder(Path(tmp))
        frames = [load_item(item) for item in expand_input(folder).items]
    print(f"torch {torch.__version__}, {len(frames)} images from {folder}")
    worst = 0.0
    for spec in args.models.split(","):
        med = bench_model(spec.strip(), frames, args.batch_size, args.repeats)
        worst = max(worst, med["convscope"] / med["pytorch-grad-cam"])
    print(f"\nworst ratio convscope / pytorch-grad-cam: {worst:.2f} (target <= 0.60)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
