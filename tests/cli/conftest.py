"""Real photos from scikit-image written to disk, as a user would hand them to the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def _variants() -> list[tuple[str, np.ndarray]]:
    """32 distinct images: 4 photos x (full, flipped, 3 crops, flipped crop, transposed crop, quarter)."""
    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        h, w = img.shape[:2]
        out += [
            (f"{name}_full", img),
            (f"{name}_flip", img[:, ::-1]),
            (f"{name}_crop_tl", img[: h * 3 // 4, : w * 3 // 4]),
            (f"{name}_crop_br", img[h // 4 :, w // 4 :]),
            (f"{name}_crop_c", img[h // 8 : h * 7 // 8, w // 8 : w * 7 // 8]),
            (f"{name}_flipcrop", img[::-1, : w // 2]),
            (f"{name}_tcrop", np.ascontiguousarray(img[: h // 2, : w // 2].transpose(1, 0, 2))),
            (f"{name}_quarter", img[::2, ::2]),
        ]
    return out


@pytest.fixture(scope="session")
def chelsea_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    """32 good images (png and jpg, nested, numbered for natural sort) plus one corrupt JPEG."""
    root = tmp_path_factory.mktemp("folder")
    for i, (name, img) in enumerate(_variants()):
        sub = root / ("set_a" if i % 2 else "set_b")
        sub.mkdir(exist_ok=True)
        ext = ".jpg" if i % 3 == 0 else ".png"
        Image.fromarray(np.ascontiguousarray(img)).save(sub / f"img{i}_{name}{ext}")
    good = (root / "set_a" / "img1_chelsea_flip.png").read_bytes()
    (root / "set_a" / "img99_broken.png").write_bytes(good[: len(good) // 3])
    (root / "notes.txt").write_text("not an image, ignored")
    return root
