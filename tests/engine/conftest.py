"""Fixtures for engine tests: real photos and small models with set (seeded) weights."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import MixedReLUNet, seeded, tiny_bundle
from skimage import data


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    return data.chelsea()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return data.coffee()


@pytest.fixture()
def mixed():
    """A fresh MixedReLUNet bundle (seeded) and its reference twin with the same weights."""
    net = seeded(MixedReLUNet)
    ref = MixedReLUNet(reference=True)
    ref.load_state_dict(net.state_dict())
    return tiny_bundle(net), ref.eval()
