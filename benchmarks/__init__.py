"""Benchmark scripts, run as `python -m benchmarks.<name>`; each prints its figures."""

from __future__ import annotations

import time
from typing import Callable


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of `repeat` wall-clock runs of `fn`, in seconds (least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
