"""Time `save_ply` / `load_ply` for one full SHARP prediction (1,179,648 splats) against the raw
floor: `ndarray.tofile` / `np.fromfile` of the same number of bytes.

    python -m benchmarks.ply_io [--n 1179648] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks import best_of
from sharp_core import ply
from sharp_core.gaussians import Gaussians
from sharp_core import load_ply, save_ply


def _scene(n: int) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    quats = torch.randn(n, 4, generator=g)
    means = torch.randn(n, 3, generator=g)
    means[:, 2] = means[:, 2].abs() * 5 + 0.5
    return Gaussians(
        means=means,
        scales=torch.rand(n, 3, generator=g) * 0.05,
        quats=quats / quats.norm(dim=-1, keepdim=True),
        colors=torch.rand(n, 3, generator=g),
        opacities=torch.rand(n, generator=g),
        focal_px=[1536.0],
        image_size=[(1536, 1152)],
    )


def _parse_only(path: Path) -> dict:
    """load_ply's file part alone: header and structured arrays, no decoding."""
    with open(path, "rb") as f:
        order, elements, start = ply._read_header(f, path)
        return ply._read_binary(f, path, order, elements, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_179_648)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scene = _scene(args.n)
    with tempfile.TemporaryDirectory() as folder:
        ours = Path(folder) / "scene.ply"
        raw = Path(folder) / "raw.bin"
        save_ply(scene, ours)
        size = ours.stat().st_size
        blob = np.random.default_rng(0).random(size // 4 + 1, dtype=np.float32)
        write = best_of(lambda: save_ply(scene, ours), args.repeat)
        write_raw = best_of(lambda: blob.tofile(raw), args.repeat)
        encode = best_of(lambda: ply._vertex_array(scene), args.repeat)
        read = best_of(lambda: load_ply(ours), args.repeat)
        parse = best_of(lambda: _parse_only(ours), args.repeat)
        read_raw = best_of(lambda: np.fromfile(raw, dtype=np.float32), args.repeat)
    print(f"{args.n:,} Gaussians, {size / 2**20:.1f} MiB PLY, best of {args.repeat} (page cache warm)")
    print(f"save_ply {write:.3f} s   ndarray.tofile {write_raw:.3f} s   ratio {write / write_raw:.2f}x")
    print(f"load_ply {read:.3f} s   np.fromfile    {read_raw:.3f} s   ratio {read / read_raw:.2f}x")
    print(f"  of save_ply: encoding (sRGB curve, SH, logit, log) {encode:.3f} s, "
          f"header + bytes + rename {write - encode:.3f} s")
    print(f"  of load_ply: header + bytes {parse:.3f} s, "
          f"decoding (checks, sRGB curve, exp, sigmoid, normalise) {read - parse:.3f} s")


if __name__ == "__main__":
    main()
