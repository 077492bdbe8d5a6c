"""Helpers of the Ray tests: small real photos, the local reference run, output files by path.

A module of its own (not conftest.py): ``from conftest import`` would find another folder's
conftest when pytest collects several test folders in one process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "horse")
# a small torchvision net with seeded random weights at 64 px: Ray tests pay for every actor's start
MODEL = ("-m", "mobilenet_v3_small", "--weights", "random", "--input-size", "64")
ALGOS = ("--algorithms", "gradcam,guided_backprop")


def write_photos(root: Path) -> Path:
    """Six skimage photos at a quarter size (about 128 px) and one truncated PNG, last in natural order."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(PHOTOS):
        img = getattr(data, name)()
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(np.ascontiguousarray(img[::4, ::4])).save(sub / f"img{i}_{name}.png")
    good = (root / "b" / "img0_chelsea.png").read_bytes()
    (root / "zz_broken.png").write_bytes(good[: len(good) // 3])
    return root


def explain_local(photos: Path, out: Path, *extra: str) -> dict:
    """The plain local run, on one torch thread: the thread count each Ray actor (1 CPU) runs with.

    Float sums depend on how many threads share them (about 1e-6 relative), so equal thread counts
    give byte-equal files.
    """
    from convscope.cli.main import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["explain", "-i", str(photos), "-o", str(out), *MODEL, *ALGOS, "--save-raw", "-q", *extra])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return json.loads((out / "report.json").read_text())


def output_files(root: Path) -> dict[str, bytes]:
    """Every output file's bytes by relative path, the resume ledger (.convscope/) left out."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".convscope" not in p.relative_to(root).parts}
