"""Timing helpers shared by the bench scripts (medians: these machines are noisy)."""
from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int) -> tuple[float, object]:
    """Median wall time (s) of ``repeats`` calls and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out
