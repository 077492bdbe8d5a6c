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


#: the input side of the small models of the reference tests (issue 13's zoo): 128 px keeps them cheap
SMALL = 128


@pytest.fixture(scope="session")
def small_zoo():
    """``small_zoo(name)``: like ``zoo`` but fed 128x128 inputs (the maps' references are size-agnostic)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            weights = "default" if name == "efficientnet_lite0" else "random"
            cache[name] = load_model(name, weights=weights, input_size=SMALL)
        return cache[name]

    return get
