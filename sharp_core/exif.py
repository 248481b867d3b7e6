"""Photo loading with SHARP's EXIF focal-length rule.

The rule: `FocalLengthIn35mmFilm` when present and >= 1, else `FocalLength`, which below 10 mm is
taken to be a phone's physical focal length and multiplied by 8.4 (a crude crop factor).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

__all__ = ["focal_mm_from_exif", "load_image"]

PHONE_CROP_FACTOR = 8.4
_EXIF_IFD = 0x8769


def _exif_values(image: Image.Image) -> dict[str, object]:
    exif = image.getexif()
    tags = {ExifTags.TAGS.get(k, k): v for k, v in exif.items()}
    tags.update({ExifTags.TAGS.get(k, k): v for k, v in exif.get_ifd(_EXIF_IFD).items()})
    return tags


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if np.isfinite(number) else None


def focal_mm_from_exif(image: Image.Image) -> float | None:
    """35 mm-equivalent focal length from a PIL image's EXIF, or None when it records none."""
    tags = _exif_values(image)
    f35 = _number(tags.get("FocalLengthIn35mmFilm"))
    if f35 is not None and f35 >= 1:
        return f35
    f = _number(tags.get("FocalLength"))
    if f is None or f <= 0:
        return None
    return f * PHONE_CROP_FACTOR if f < 10.0 else f


def load_image(path: str | os.PathLike) -> tuple[torch.Tensor, float | None]:
    """Read a photo upright (EXIF orientation applied) -> (H, W, 3) float RGB in [0, 1], focal mm or None."""
    with Image.open(path) as raw:
        focal = focal_mm_from_exif(raw)
        upright = ImageOps.exif_transpose(raw).convert("RGB")
    return torch.from_numpy(np.array(upright)).float().div_(255.0), focal
