"""Fixtures for algorithm tests: real photos, zoo models (seeded random or real weights)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from convscope.models import load_model


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    return data.chelsea()


@pytest.fixture(scope="session")
def zoo():
    """``zoo(name)``: a loaded model, cached for the session (random weights except the offline model)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_model(name, weights="default" if name == "efficientnet_lite0" else "random")
        return cache[name]

    return get
