"""antimatter15 `.splat`: 32 bytes a splat, no header; what antimatter15/splat and many web viewers load.

Record (little endian): float32 x, y, z; float32 scale x, y, z (linear std-devs); u8 r, g, b, a;
u8 quaternion w, x, y, z.

Conventions:
- frame: the PLY frame, i.e. ours unchanged (OpenCV: x right, y down, z forward; metres).
- positions and scales: float32 (exact for our float32 scenes); scales floored at the smallest
  normal float32 so readers that take their log (splat-transform does) never get -inf.
- colour: r, g, b = round(255 srgb(c)) of our linear colours (the sRGB-encoded DC colour, like
  0.5 + C0 f_dc in a PLY): |error of srgb(c)| <= 1/510.
- opacity: a = round(255 o) of the linear opacity, clamped to 1..254 so readers that convert to a
  PLY's logit never get an infinity: |error| <= 1/510 inside [1/255, 254/255], at most 1/255 outside.
- quaternion: byte = round(128 q + 128) clamped to 0..255 of the unit quaternion with w >= 0, read as
  (byte - 128) / 128 then normalised (all 128: identity). Each component within 1/256 (1/128 for a
  component near +1, which clips at 255), so the rotation angle error is at most 0.025 rad (1.4
  degrees); the identity is exact.
- no SH bands, no camera: sh_rest is dropped; focal length and image size read back as the PLY
  defaults (512 px, 640 x 480).
- order: splats are written sorted by size times opacity, s_x s_y s_z o, descending (stable), as
  antimatter15's converter does: its viewer streams the file and draws the big, opaque splats first.
  The file's splat order is therefore not the scene's.
Sniffing: no header, so a file is taken for a `.splat` when its size is a multiple of 32, it does not
start with another format's magic, and its first records are plausible (finite positions under 1e6 m,
finite scales in [0, 1e6)); otherwise the ".splat" extension decides. Writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..color import linear_to_srgb, srgb_to_linear
from ..gaussians import Gaussians
from . import ply
from .base import SplatFormat

__all__ = ["save_splat", "load_splat", "SPLAT_RECORD"]

SPLAT_RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])
assert SPLAT_RECORD.itemsize == 32
_OTHER_MAGIC = (b"ply", b"NGSP", b"\x1f\x8b", b"glTF", b"PK\x03\x04", b"{", b"RIFF", b"KSPL")
_PLAUSIBLE = 1e6


@torch.no_grad()
def save_splat(gaussians: Gaussians, path: str | os.PathLike) -> Path:
    """Write one scene as an antimatter15 `.splat` (sorted by size x opacity, see the module docstring)."""
    path = Path(path)
    if gaussians.batch_size != 1:
        raise ValueError(f"save_splat writes one scene but got a batch of {gaussians.batch_size}.")
    gaussians.check_finite(f"save {path.name}")
    g = gaussians.to(device="cpu", dtype=torch.float32)
    scales = np.maximum(g.scales[0].numpy(), np.float32(ply.SCALE_FLOOR))
    opacity = g.opacities[0].numpy()
    weight = scales.astype(np.float64).prod(axis=1) * opacity
    order = np.argsort(-weight, kind="stable")

    n = g.num_gaussians
    rgba = np.empty((n, 4), dtype=np.uint8)
    rgba[:, :3] = _u8(linear_to_srgb(g.colors[0]).numpy() * 255.0, 0, 255)
    rgba[:, 3] = _u8(opacity * 255.0, 1, 254)
    q = g.quats[0].numpy().astype(np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    columns = (g.means[0].numpy().astype("<f4"), scales.astype("<f4"), rgba, _u8(q * 128.0 + 128.0, 0, 255))
    rows = np.concatenate([c.view(np.uint8).reshape(n, c.shape[1] * c.itemsize) for c in columns], axis=1)  # (N, 32)
    records = rows[order]
    with atomic_write(path) as f:
        f.write(records.tobytes())
    return path


def _u8(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), lo, hi).astype(np.uint8)


def load_splat(path: str | os.PathLike) -> Gaussians:
    """Read an antimatter15 `.splat` as a one-scene `Gaussians`; ValueError names the file and the problem."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size % SPLAT_RECORD.itemsize:
            raise ValueError(
                f"{path}: not a .splat file or truncated: {size:,} bytes is not a multiple of the 32-byte "
                f"record ({size % SPLAT_RECORD.itemsize} bytes left over)."
            )
        records = np.fromfile(path, dtype=SPLAT_RECORD)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"{path}: cannot read the .splat file ({error}).") from error
    positions, scales = records["position"], records["scale"]
    if not (np.isfinite(positions).all() and np.isfinite(scales).all()):
        raise ValueError(f"{path}: .splat positions or scales contain NaN or infinite values; the file is corrupt.")
    if (scales < 0).any():
        raise ValueError(f"{path}: .splat scales must be >= 0 (found {float(scales.min()):g}); the file is corrupt "
                         "or not a .splat file.")
    rgba = records["rgba"].astype(np.float32) / 255.0
    q = (records["rotation"].astype(np.float32) - 128.0) / 128.0
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    return Gaussians(
        means=torch.from_numpy(np.ascontiguousarray(positions)),
        scales=torch.from_numpy(np.ascontiguousarray(scales)),
        quats=torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)),
        colors=srgb_to_linear(torch.from_numpy(np.ascontiguousarray(rgba[:, :3]))),
        opacities=torch.from_numpy(np.ascontiguousarray(rgba[:, 3])),
        focal_px=[ply.DEFAULT_FOCAL_PX], image_size=[ply.DEFAULT_IMAGE_SIZE],
    )


def _sniff(head: bytes, path: Path) -> bool:
    """No magic: a size that is a multiple of 32, no other format's magic, plausible first records."""
    if not head or head.startswith(_OTHER_MAGIC):
        return False
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size % SPLAT_RECORD.itemsize:
        return False
    usable = len(head) - len(head) % SPLAT_RECORD.itemsize
    records = np.frombuffer(head[:usable], dtype=SPLAT_RECORD)
    floats = np.concatenate([records["position"].ravel(), records["scale"].ravel()])
    scales = records["scale"]
    with np.errstate(invalid="ignore"):
        return bool(
            len(records) and np.isfinite(floats).all() and (np.abs(records["position"]) < _PLAUSIBLE).all()
            and (scales >= 0).all() and (scales < _PLAUSIBLE).all()
        )


FORMATS = (
    SplatFormat(
        name="splat", label=".splat (antimatter15)", extensions=(".splat",),
        write=save_splat, read=load_splat, sniff=_sniff,
    ),
)
