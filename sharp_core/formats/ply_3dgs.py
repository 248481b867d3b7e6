"""Plain 3DGS PLY (format "ply"): the layout trained-3DGS tools (INRIA's gaussian-splatting, nerfstudio,
SuperSplat) write, without SHARP's extra elements, so tools that expect exactly one `vertex` element
take it; and the PLY that keeps spherical-harmonic bands beyond DC.

Layout (binary little endian, every property float32), one `vertex` element of N splats:
x, y, z; nx, ny, nz (zeros, as INRIA's writer; `normals=False` leaves them out); f_dc_0..2;
f_rest_0 .. f_rest_{3K-1} when the scene has `sh_rest` (N, K, 3), channel-major: f_rest[c * K + k]
= sh_rest[:, k, c]; opacity; scale_0..2; rot_0..3. Header comments `sharp_focal_px F` and
`sharp_image_size W H` carry the source camera (other readers ignore comments).

Conventions (the same as SHARP's PLY):
- frame: ours unchanged (OpenCV: x right, y down, z forward; metres);
- colour: f_dc = (srgb(c) - 0.5) / C0 (C0 = 0.28209479) of our linear colours; f_rest as carried;
- opacity: logit of the opacity clamped to [2^-24, 1 - 2^-24], so 0 and 1 store finite logits
  (+-16.6) and read back within 6e-8 of 0 and 1;
- scale: natural log of the std-devs, floored at the smallest normal float32 (a zero scale stores
  -87.3, never -inf);
- quaternion: rot_0..3 = w, x, y, z (unit).
Quantisation: float32 only. Round trip bounds (asserted in tests/test_format_ply_3dgs.py): positions
and f_rest exact (float32 in, float32 out); quaternions within 3e-7 (renormalised on reading); scales
relative 1.2e-7 (1 + |ln s|) (float32 log / exp: 4e-7 for usual sizes, 1e-5 at the floor); opacity
1e-6 (logit / sigmoid) inside [2^-24, 1 - 2^-24]; colour 1e-5 in linear RGB (sRGB encode / decode).

Which name picks which: a file name ending ".ply" means SHARP's PLY when saving (`format="ply"`
chooses this one); on loading, every PLY that is not a PlayCanvas compressed PLY is read by
`formats.ply.load_ply`, which takes both layouts (SHARP's elements when present, f_rest_* as SH).
Writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..gaussians import Gaussians
from . import ply
from .base import SplatFormat

__all__ = ["save_3dgs_ply"]


@torch.no_grad()
def save_3dgs_ply(gaussians: Gaussians, path: str | os.PathLike, normals: bool = True) -> Path:
    """Write one scene as a plain 3DGS PLY (see the module docstring); returns the path."""
    path = Path(path)
    if gaussians.batch_size != 1:
        raise ValueError(f"save_3dgs_ply writes one scene but got a batch of {gaussians.batch_size}.")
    gaussians.check_finite(f"save {path.name}")
    sharp_rows = ply._vertex_array(gaussians)  # x y z f_dc(3) opacity scale(3) rot(4)
    n = len(sharp_rows)
    names = ["x", "y", "z"]
    columns = [sharp_rows[:, 0:3]]
    if normals:
        names += ["nx", "ny", "nz"]
        columns.append(np.zeros((n, 3), dtype="<f4"))
    names += ["f_dc_0", "f_dc_1", "f_dc_2"]
    columns.append(sharp_rows[:, 3:6])
    if gaussians.sh_rest is not None:
        rest = gaussians.sh_rest[0].detach().to(device="cpu", dtype=torch.float32).numpy()  # (N, K, 3)
        channel_major = rest.transpose(0, 2, 1).reshape(n, -1)
        names += [f"f_rest_{i}" for i in range(channel_major.shape[1])]
        columns.append(channel_major)
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    columns.append(sharp_rows[:, 6:14])
    table = np.ascontiguousarray(np.concatenate(columns, axis=1), dtype="<f4")

    width, height = gaussians.image_size[0]
    header = [
        "ply", "format binary_little_endian 1.0", "comment written by sharp_core (3DGS layout)",
        f"comment sharp_focal_px {gaussians.focal_px[0]!r}", f"comment sharp_image_size {width} {height}",
        f"element vertex {n}", *(f"property float {name}" for name in names), "end_header\n",
    ]
    with atomic_write(path) as f:
        f.write("\n".join(header).encode("ascii"))
        if n:
            f.write(memoryview(table).cast("B"))
    return path


FORMATS = (
    SplatFormat(
        name="ply", label="PLY (3DGS)", extensions=(".ply",),
        write=save_3dgs_ply, read=ply.load_ply, sniff=None,
    ),
)
