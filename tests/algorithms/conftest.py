"""Fixtures for algorithm tests: real photos, zoo models (seeded random or real weights)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from convscope.models import load_model


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    return data.chelsea()


#: the input side of the small models of the reference tests (issue 13's zoo): 128 px keeps them cheap
SMALL = 128


@pytest.fixture(scope="session")
def small_zoo():
    """``small_zoo(name)``: a loaded model fed 128x128 inputs, cached for the session (random weights
    except the offline model; the maps' references do not depend on the input size)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            weights = "default" if name == "efficientnet_lite0" else "random"
            cache[name] = load_model(name, weights=weights, input_size=SMALL)
        return cache[name]

    return get
