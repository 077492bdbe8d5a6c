"""Fixtures for the unit explorer: models at 128 px (enough for every stride), real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data

from convscope.models import discover_layers, load_model


@pytest.fixture(scope="session")
def units_models():
    """name -> (bundle, {layer name: LayerInfo}), built on first use, 128 px inputs."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            weights = "default" if name == "efficientnet_lite0" else "random"
            bundle = load_model(name, weights=weights, input_size=128)
            cache[name] = (bundle, {la.name: la for la in discover_layers(bundle)})
        return cache[name]

    return get


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """A few real photos of different sizes and aspect ratios."""
    return {"chelsea": data.chelsea(), "coffee": data.coffee(), "astronaut": data.astronaut()[::2, ::2].copy(),
            "rocket": data.rocket()}


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory, photos) -> Path:
    """Six real photos (about 160 px, JPEG), two in a subfolder."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    names = ["chelsea", "coffee", "astronaut", "rocket"]
    extra = {"camera": data.camera(), "cells": data.immunohistochemistry()}
    for name, im in [(n, photos[n]) for n in names] + list(extra.items()):
        img = Image.fromarray(im).convert("RGB")
        img.thumbnail((160, 160))
        img.save(root / ("sub/" if name in ("rocket", "cells") else "") / f"{name}.jpg", quality=92)
    return root
