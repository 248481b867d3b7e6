"""Load Image (focal length): the core Load Image's behaviour plus the photo's EXIF focal length."""

from __future__ import annotations

import hashlib
import logging
import os

import folder_paths
import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from ..sharp_core import focal_mm_from_exif, pil_to_rgb
from .common import CATEGORY

log = logging.getLogger(__name__)


def input_images() -> list[str]:
    folder = folder_paths.get_input_directory()
    names = [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))] if os.path.isdir(folder) else []
    return sorted(folder_paths.filter_files_content_types(names, ["image"]))


def frame_to_tensors(frame: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One PIL frame -> (H, W, 3) float RGB in [0, 1] and its (H, W) mask (1 - alpha), or None."""
    rgb = torch.from_numpy(pil_to_rgb(frame))
    alpha = None
    if "A" in frame.getbands():
        alpha = frame.getchannel("A")
    elif frame.mode == "P" and "transparency" in frame.info:
        alpha = frame.convert("RGBA").getchannel("A")
    mask = None if alpha is None else 1.0 - torch.from_numpy(np.asarray(alpha, dtype=np.float32) / 255.0)
    return rgb, mask


class SharpLoadImage:
    DESCRIPTION = (
        "Like Load Image (upload, EXIF rotation, alpha as MASK) and also reads the camera's focal length "
        "from EXIF (35 mm equivalent) for SHARP Predict."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load_image"
    RETURN_TYPES = ("IMAGE", "MASK", "FLOAT")
    RETURN_NAMES = ("image", "mask", "focal_length_mm")
    OUTPUT_TOOLTIPS = (
        "The photo, upright (EXIF orientation applied), RGB.",
        "1 - alpha, as the core Load Image gives it (zeros when the file has no alpha).",
        "35 mm-equivalent focal length from EXIF, or fallback_focal_mm when the file has none.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": (input_images(), {"image_upload": True, "tooltip": "An image in ComfyUI's input folder (or upload one)."}),
                "fallback_focal_mm": ("FLOAT", {
                    "default": 30.0, "min": 0.1, "max": 10000.0, "step": 0.1,
                    "tooltip": "35 mm-equivalent focal length to output when the file has no EXIF focal length.",
                }),
            }
        }

    def load_image(self, image: str, fallback_focal_mm: float = 30.0):
        path = folder_paths.get_annotated_filepath(image)
        try:
            opened = Image.open(path)
        except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"Cannot open image '{image}' ({exc}); upload it again or pick another file.") from exc
        focal_mm = focal_mm_from_exif(opened)
        if focal_mm is None or not focal_mm > 0:
            log.info("SHARP Load Image: no EXIF focal length in '%s', using %.1f mm.", image, fallback_focal_mm)
            focal_mm = fallback_focal_mm
        images, masks = [], []
        for frame in ImageSequence.Iterator(opened):
            frame = ImageOps.exif_transpose(frame)
            rgb, mask = frame_to_tensors(frame)
            if images and rgb.shape != images[0].shape:
                continue  # animated files with frames of another size: keep the first size only
            images.append(rgb)
            masks.append(mask if mask is not None else torch.zeros(64, 64))
        if opened.format == "MPO":  # multi-picture JPEG: the extra frames are previews, not a batch
            images, masks = images[:1], masks[:1]
        if len({tuple(m.shape) for m in masks}) > 1:  # some frames had alpha, some not
            masks = [m if m.shape == images[0].shape[:2] else torch.zeros(images[0].shape[:2]) for m in masks]
        return torch.stack(images), torch.stack(masks), float(focal_mm)

    @classmethod
    def IS_CHANGED(cls, image, **kwargs):
        digest = hashlib.sha256()
        with open(folder_paths.get_annotated_filepath(image), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        if not folder_paths.exists_annotated_filepath(image):
            return f"Invalid image file: {image}"
        return True


NODE_CLASS_MAPPINGS = {"SharpLoadImage": SharpLoadImage}
NODE_DISPLAY_NAME_MAPPINGS = {"SharpLoadImage": "Load Image (focal length)"}
