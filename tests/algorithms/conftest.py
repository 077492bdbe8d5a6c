"""Fixtures for algorithm tests: real photos, zoo models (seeded random or real weights)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from convscope.models import load_model


def pearson(a, b) -> float:
    """Pearson correlation of two arrays (torch tensors or numpy), flattened."""
    a = np.asarray(a.detach() if hasattr(a, "detach") else a, dtype=np.float64).ravel()
    b = np.asarray(b.detach() if hasattr(b, "detach") else b, dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


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
