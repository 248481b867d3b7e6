"""Photo loading with SHARP's EXIF focal-length rule.

The rule: `FocalLengthIn35mmFilm` when present and >= 1, else `FocalLength`, which below 10 mm is
taken to be a phone's physical focal length and multiplied by 8.4 (a crude crop factor).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

__all__ = ["focal_mm_from_exif", "load_image", "pil_to_rgb"]

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


# Integer modes wider than 8 bits, by their full-scale value. PIL opens 16-bit grey PNG/TIFF as
# "I;16*"; 16-bit RGB files arrive as 8-bit "RGB" already scaled by PIL.
_WIDE_INTEGER_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0}


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] from any PIL mode, scaled by the mode's bit depth.

    8-bit modes divide by 255; 16-bit grey ("I;16*") by 65535; 32-bit integer ("I") by 65535 when
    every value fits in 16 bits (how PIL widens 16-bit files), else by 2^31 - 1; 32-bit float ("F")
    is taken as [0, 1] and refused beyond it. `.convert("RGB")` alone would saturate the wide modes.
    """
    mode = image.mode
    if mode in _WIDE_INTEGER_MODES or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":
            if not np.isfinite(values).all() or values.max(initial=0.0) > 1.0 or values.min(initial=0.0) < 0.0:
                raise ValueError(f"a 32-bit float image must hold values in [0, 1] (range {values.min():g} .. "
                                 f"{values.max():g}); tone-map or normalise it first")
            scale = 1.0
        elif mode == "I":
            scale = 65535.0 if values.max(initial=0.0) <= 65535 else 2.0**31 - 1
        else:
            scale = _WIDE_INTEGER_MODES[mode]
        grey = np.clip(values / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | os.PathLike) -> tuple[torch.Tensor, float | None]:
    """Read a photo upright (EXIF orientation applied) -> (H, W, 3) float RGB in [0, 1], focal mm or None.

    Raises ValueError naming the file when it is not an image PIL can read.
    """
    try:
        with Image.open(path) as raw:
            focal = focal_mm_from_exif(raw)
            rgb = pil_to_rgb(ImageOps.exif_transpose(raw))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read the image ({exc})") from None
    return torch.from_numpy(rgb), focal
