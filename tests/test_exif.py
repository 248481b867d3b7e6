"""EXIF focal length (SHARP's rule) and photo loading."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from sharp_core.exif import focal_mm_from_exif, load_image
from sharp_core.prediction import focal_px_from_mm


def _jpeg(tmp_path, exif_tags: dict[int, object], ifd_tags: dict[int, object], size=(40, 20)):
    image = Image.new("RGB", size, (200, 10, 10))
    image.paste((10, 10, 200), (0, 0, size[0] // 2, size[1]))  # left half blue
    exif = Image.Exif()
    for k, v in exif_tags.items():
        exif[k] = v
    sub = exif.get_ifd(0x8769)
    for k, v in ifd_tags.items():
        sub[k] = v
    path = tmp_path / "photo.jpg"
    image.save(path, exif=exif, quality=95)
    return path


@pytest.mark.parametrize(
    "ifd, expected",
    [
        ({0xA405: 26}, 26.0),  # FocalLengthIn35mmFilm wins
        ({0xA405: 0, 0x920A: 50.0}, 50.0),  # 0 means unknown: fall back to FocalLength
        ({0x920A: 4.25}, 4.25 * 8.4),  # phone-sized physical focal length
        ({}, None),
    ],
)
def test_focal_rule(tmp_path, ifd, expected):
    with Image.open(_jpeg(tmp_path, {}, ifd)) as image:
        got = focal_mm_from_exif(image)
    assert got == (None if expected is None else pytest.approx(expected))


def test_load_image_applies_orientation(tmp_path):
    path = _jpeg(tmp_path, {0x0112: 6}, {0xA405: 28})  # rotate 90 degrees clockwise to view
    image, focal = load_image(path)
    assert image.shape == (40, 20, 3) and image.dtype == torch.float32
    assert focal == 28.0
    # The blue left half of the stored image ends up on top after the 90 degree turn.
    assert image[2, 10, 2] > 0.6 and image[-3, 10, 0] > 0.6


def test_focal_mm_to_px_uses_the_diagonal():
    assert focal_px_from_mm(30.0, 36, 24) == pytest.approx(30.0)
    assert focal_px_from_mm(30.0, 4000, 3000) == pytest.approx(30.0 * 5000 / 43.2666153, rel=1e-6)
