"""Memory over repeated predictions: RSS after each of N predictions in one process (the tiny
fixture network, which still makes 1,179,648 Gaussians per photo), against the RSS after the first.

    python -m benchmarks.memory [--runs 20] [--size 64x48]

A leak (a cache that grows, tensors kept alive across calls) shows as a steady climb. glibc keeps
freed blocks in its arenas, which moves RSS by +-100 MB from run to run; after each run the heap is
trimmed (malloc_trim, where glibc has it) so RSS follows live memory, and the growth is read from a
least-squares line through all runs as well as from last minus first. Goal: growth over 20
predictions below 50 MB.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import time
from pathlib import Path

import torch

TINY = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "sharp-tiny" / "weights.safetensors"


def rss_mb() -> float:
    """Current resident set size of this process (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def trim_heap() -> None:
    """Give glibc's free arena memory back to the OS (no-op where there is no glibc)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def trend_mb(samples: list[float]) -> float:
    """Growth from the first to the last run along the least-squares line through the samples."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(samples) / n
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(samples)) / sum((i - mean_x) ** 2 for i in range(n))
    return slope * (n - 1)


def main() -> None:
    import sharp_core

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--size", default="64x48", help="input photo size W x H")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    model = sharp_core.load_model(TINY)
    image = torch.rand(height, width, 3, generator=torch.Generator().manual_seed(0))
    samples = []
    for run in range(args.runs):
        start = time.perf_counter()
        scene = sharp_core.predict(model, image, focal_mm=30.0)
        del scene
        gc.collect()
        trim_heap()
        samples.append(rss_mb())
        print(f"run {run + 1:3d}: {time.perf_counter() - start:5.2f} s, RSS {samples[-1]:8.1f} MB")
    first, last, peak = samples[0], samples[-1], max(samples)
    print(f"\nRSS after run 1: {first:.1f} MB, after run {args.runs}: {last:.1f} MB, peak {peak:.1f} MB")
    print(f"growth over runs 2..{args.runs}: {last - first:+.1f} MB last minus first, {trend_mb(samples):+.1f} MB "
          f"along the least-squares line (goal < 50 MB)")


if __name__ == "__main__":
    main()
