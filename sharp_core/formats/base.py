"""What every splat format module provides: one `SplatFormat` per format it reads or writes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..color import srgb_to_linear
from ..gaussians import Gaussians

__all__ = ["SplatFormat", "camera_entry", "camera_from_entry", "scene_from_arrays"]


@dataclass(frozen=True)
class SplatFormat:
    """One splat file format.

    name: the `format=` value ("sharp-ply", "spz", ...); label: what a UI shows.
    extensions: lower-case file-name endings, e.g. (".compressed.ply",); the longest match wins.
    write(scene, path, **options): writes one scene (a batch of one) atomically to `path`.
    read(path) -> Gaussians: one scene; raises ValueError naming the file and the problem.
    sniff(head, path) -> bool: whether the first bytes (up to 4 KiB) are this format's.
    """

    name: str
    label: str
    extensions: tuple[str, ...]
    write: Callable[..., object] | None
    read: Callable[[Path], Gaussians] | None
    sniff: Callable[[bytes, Path], bool] | None = None


def camera_entry(gaussians: Gaussians) -> dict:
    """The source camera of a one-scene `Gaussians` as a JSON object, for formats with JSON metadata
    (SOG's meta.json, glTF's extras): {"focal_px": float, "image_size": [W, H]}."""
    return {"focal_px": float(gaussians.focal_px[0]), "image_size": [int(v) for v in gaussians.image_size[0]]}


def camera_from_entry(path: Path, entry, where: str, default_focal: float,
                      default_size: tuple[int, int]) -> tuple[float, tuple[int, int]]:
    """(focal_px, (W, H)) from a `camera_entry` object (defaults where absent or not an object);
    ValueError names the file and `where` (e.g. "meta.json 'sharp' entry") when malformed."""
    entry = entry if isinstance(entry, dict) else {}
    try:
        focal = float(entry.get("focal_px", default_focal))
        w, h = entry.get("image_size", default_size)
        image_size = (int(w), int(h))
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {where} has a malformed focal_px / image_size.") from None
    if not math.isfinite(focal) or focal <= 0 or min(image_size) <= 0:
        raise ValueError(f"{path}: {where} gives an invalid focal length or image size.")
    return focal, image_size


def scene_from_arrays(means: np.ndarray, scales: np.ndarray, quats: np.ndarray, srgb: np.ndarray,
                      opacity: np.ndarray, focal_px: float, image_size: tuple[int, int],
                      sh_rest: np.ndarray | None = None, linear: bool = False) -> Gaussians:
    """A one-scene `Gaussians` from decoded (N, ...) arrays: means (N, 3) metres, scales (N, 3)
    linear, quats (N, 4) w, x, y, z, colours (N, 3) sRGB-encoded (or linear when `linear`),
    opacity (N,) in [0, 1], optional sh_rest (N, K, 3); cast to float32 tensors."""
    tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    colors = tensor(srgb)
    return Gaussians(
        means=tensor(means), scales=tensor(scales), quats=tensor(quats),
        colors=colors if linear else srgb_to_linear(colors), opacities=tensor(opacity),
        focal_px=[focal_px], image_size=[image_size],
        sh_rest=None if sh_rest is None else tensor(sh_rest),
    )
