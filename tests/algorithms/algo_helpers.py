"""Helpers for algorithm tests."""

from __future__ import annotations

import numpy as np


def pearson(a, b) -> float:
    """Pearson correlation of two arrays (torch tensors or numpy), flattened."""
    a = np.asarray(a.detach() if hasattr(a, "detach") else a, dtype=np.float64).ravel()
    b = np.asarray(b.detach() if hasattr(b, "detach") else b, dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])
