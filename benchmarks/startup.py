"""Wall time of one-image Grad-CAM from a cold process: ``convscope gradcam`` against a
pytorch-grad-cam ``cam.py``-style script, same model (EfficientNet-Lite0, ImageNet weights), same
image (skimage's chelsea), same layer (bn2, the map that feeds the head), process start-up included.

The two commands run interleaved (A B A B ...) so that load on a shared machine hits both alike;
the medians and their ratio are printed as a README table row. Besides the wall time, each
command's CPU time (user + system of the child process) is reported: on a shared, loaded machine
it is the steadier of the two.

    .venv/bin/python benchmarks/startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAM_PY = '''
import sys

import cv2
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from convscope.models import load_model  # the same network and weights as convscope's

image_path, out_path = sys.argv[1], sys.argv[2]
model = load_model("efficientnet_lite0").module
model.requires_grad_(True)  # as a freshly built torchvision/timm model is (load_model freezes it)
rgb = cv2.imread(image_path, 1)[:, :, ::-1]
rgb = np.float32(cv2.resize(rgb, (224, 224))) / 255
x = preprocess_image(rgb, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
with GradCAM(model=model, target_layers=[model.bn2]) as cam:
    top = int(model(x).argmax())
    grayscale = cam(input_tensor=x, targets=[ClassifierOutputTarget(top)])[0]
cv2.imwrite(out_path, show_cam_on_image(rgb, grayscale, use_rgb=True)[:, :, ::-1])
'''


def timed(cmd: list[str]) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from PIL import Image
    from skimage import data

    tmp = Path(tempfile.mkdtemp())
    image = tmp / "chelsea.png"
    Image.fromarray(data.chelsea()).save(image)
    script = tmp / "cam_py.py"
    script.write_text(CAM_PY)
    exe = Path(sys.executable).with_name("convscope")
    ours = [str(exe), "gradcam", "-i", str(image), "--top-k", "1", "--layer", "bn2", "--overwrite", "-q"]
    variants = {
        "convscope gradcam (input size)": [*ours, "-o", str(tmp / "ours.png")],
        "convscope gradcam --size model": [*ours, "--size", "model", "-o", str(tmp / "ours224.png")],
        "pytorch-grad-cam cam.py-style": [sys.executable, str(script), str(image), str(tmp / "theirs.png")],
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    timed(variants["pytorch-grad-cam cam.py-style"])  # warm the page cache for both, not counted
    timed(variants["convscope gradcam (input size)"])
    for r in range(args.repeats):
        for name, cmd in variants.items():
            times[name].append(timed(cmd))
        print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1][0]:.2f} s ({t[-1][1]:.2f} s CPU)"
                                             for n, t in times.items()), file=sys.stderr, flush=True)
    ref = [statistics.median(v[i] for v in times["pytorch-grad-cam cam.py-style"]) for i in (0, 1)]
    print("| command | median wall time (s) | / pytorch-grad-cam | median CPU time (s) | / pytorch-grad-cam |")
    print("|---|---|---|---|---|")
    for name, values in times.items():
        wall, cpu = (statistics.median(v[i] for v in values) for i in (0, 1))
        print(f"| {name} | {wall:.2f} | {wall / ref[0]:.2f} | {cpu:.2f} | {cpu / ref[1]:.2f} |")


if __name__ == "__main__":
    main()
