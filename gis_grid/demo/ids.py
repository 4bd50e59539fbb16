"""Opaque ids for generated rows."""
from __future__ import annotations

import numpy as np

from ..errors import GisGridError


def unique_ids(rng: np.random.Generator, n: int, prefix: str) -> np.ndarray:
    """Random, non-sequential opaque ids (so ids leak neither order nor count)."""
    ids = np.unique(rng.integers(0, 2 ** 48, int(n * 1.01) + 16))
    ids = rng.permutation(ids)[:n]
    if len(ids) < n:  # astronomically unlikely collisions
        raise GisGridError("id space exhausted; retry with another seed")
    return np.array([f"{prefix}{v:012x}" for v in ids], dtype=object)
