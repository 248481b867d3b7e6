"""One image -> metric 3D Gaussians, with SHARP's exact pre- and post-processing."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .gaussians import Gaussians
from .network import SharpModel
from .progress import ProgressCallback, StepCounter
from . import linalg

__all__ = ["predict", "prediction_steps", "check_images", "focal_px_from_mm", "DEFAULT_FOCAL_MM", "MIN_IMAGE_SIDE"]

DEFAULT_FOCAL_MM = 30.0  # 35 mm-equivalent, SHARP's default when EXIF has none
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
MIN_IMAGE_SIDE = 16  # pixels: SHARP upsamples to 1536, anything smaller carries no usable content
# Pixel values a little outside [0, 1] (resampling overshoot of upstream nodes) are clamped; beyond
# these the image is in another range (0-255, HDR, signed) and is refused.
PIXEL_RANGE_TOLERANCE = (-0.5, 1.5)
# Focal lengths as a multiple of the image diagonal: 35 mm-equivalent 0.004 mm .. 430 m, far beyond
# any lens; outside this the network's disparity factor under- or overflows float32.
FOCAL_DIAGONAL_RANGE = (1e-4, 1e4)


def focal_px_from_mm(focal_mm: float, width: int, height: int) -> float:
    """35 mm-equivalent focal length (measured on the diagonal) -> pixels for a W x H image."""
    return float(focal_mm) * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM


def check_images(image: torch.Tensor) -> torch.Tensor:
    """Validate an image (H, W, C) or batch (B, H, W, C) of floats in [0, 1]; return (B, H, W, 3) RGB.

    C may be 3 (RGB), 4 (RGBA: alpha is dropped, SHARP sees colour only) or 1 (grey, repeated).
    The one check for the CLI, the Python API and the Predict node; errors say what to change.
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor (H, W, 3) or (B, H, W, 3), got {type(image).__name__}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must have shape (H, W, C) or (B, H, W, C) with C = 1, 3 or 4 colour channels, "
                         f"got {tuple(image.shape)}")
    b, h, w, c = image.shape
    if b == 0:
        raise ValueError("got an empty image batch: give at least one image")
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ValueError(f"the image is {w} x {h} pixels; SHARP needs at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} "
                         "(an empty mask or a 1 x 1 placeholder?)")
    if not image.is_floating_point():
        raise ValueError(f"image must be float in [0, 1], got {image.dtype}; divide 8-bit images by 255")
    finite = torch.isfinite(image)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"the image holds {bad} NaN or infinite pixel value{'s' * (bad > 1)}; "
                         "fix the node or file that produced it")
    low, high = float(image.amin()), float(image.amax())
    if high > PIXEL_RANGE_TOLERANCE[1]:
        hint = "divide it by 255" if high <= 255.5 else "tone-map or normalise it"
        raise ValueError(f"image values reach {high:g}, but SHARP expects floats in [0, 1] ({hint})")
    if low < PIXEL_RANGE_TOLERANCE[0]:
        raise ValueError(f"image values go down to {low:g}, but SHARP expects floats in [0, 1] "
                         "(a [-1, 1] image? map it with (x + 1) / 2)")
    if low < 0.0 or high > 1.0:
        image = image.clamp(0.0, 1.0)
    if c == 4:
        return image[..., :3]
    if c == 1:
        return image.expand(-1, -1, -1, 3)
    return image


def _focal_lengths(batch: int, width: int, height: int, focal_px, focal_mm) -> list[float]:
    """Focal lengths in pixels, one per image; errors quote the value in the unit it was given."""
    if focal_px is not None and focal_mm is not None:
        raise ValueError("give focal_px or focal_mm, not both")
    name, unit, given = ("focal_px", "px", focal_px) if focal_px is not None else ("focal_mm", "mm", focal_mm)
    given = _per_image(DEFAULT_FOCAL_MM if given is None else given, batch, name)
    diagonal = math.hypot(width, height)
    low, high = (r * diagonal for r in FOCAL_DIAGONAL_RANGE)
    values = []
    for v in given:
        px = v if unit == "px" else focal_px_from_mm(v, width, height) if math.isfinite(v) else v
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} is {v:g} {unit}; a focal length must be a positive number")
        if not low <= px <= high:
            span = (f"{low:.3g} to {high:.3g} px" if unit == "px"
                    else f"{low / diagonal * FULL_FRAME_DIAGONAL_MM:.3g} to {high / diagonal * FULL_FRAME_DIAGONAL_MM:.3g} mm")
            raise ValueError(f"{name} is {v:g} {unit}, outside what any lens gives for a {width} x {height} image "
                             f"({span}); give the 35 mm-equivalent focal length in mm or the focal length in pixels")
        values.append(px)
    return values


def _per_image(value, batch: int, name: str) -> list[float]:
    if isinstance(value, torch.Tensor):
        value = value.flatten().tolist()
    if isinstance(value, (int, float)):
        value = [value]
    values = [float(v) for v in value]
    if len(values) == 1:
        values *= batch
    if len(values) != batch:
        raise ValueError(f"{name} has {len(values)} values for {batch} images; give one, or one per image")
    return values


UNPROJECTION_STAGE = "unprojection"


def prediction_steps(model: SharpModel, images: int = 1) -> int:
    """How many progress steps `predict` reports for `images` images with this model (on its device)."""
    return images * (model.progress_steps() + 1)


@torch.inference_mode()
def predict(model: SharpModel, image: torch.Tensor, focal_px: float | Sequence[float] | torch.Tensor | None = None,
            focal_mm: float | Sequence[float] | None = None, progress: ProgressCallback | None = None) -> Gaussians:
    """Predict metric Gaussians for an image (H, W, C) or batch (B, H, W, C), float in [0, 1] (see
    `check_images` for the channel counts accepted).

    Focal length in pixels of the given image, or 35 mm-equivalent millimetres (default 30 mm); one
    value or one per image. Images are processed one at a time (the network's activations at 1536 px
    dominate memory); outputs live on the model's device in float32. `depth` holds the monodepth's
    first layer as metric depth (B, H, W) at the input resolution.

    `progress(stage, done, total)` is called after each step, counted over all images of the call
    (`prediction_steps`); an exception it raises stops the prediction there (see `sharp_core.progress`).
    """
    image = check_images(image)
    b, h, w, _ = image.shape
    focals = _focal_lengths(b, w, h, focal_px, focal_mm)
    steps = StepCounter(progress, prediction_steps(model, b))
    scenes = [_predict_one(model, image[i], f, steps) for i, f in enumerate(focals)]
    if b == 1:
        return scenes[0]
    return Gaussians(
        **{k: torch.cat([getattr(s, k) for s in scenes]) for k in ("means", "scales", "quats", "colors", "opacities", "depth")},
        focal_px=focals, image_size=[(w, h)] * b,
    )


def _predict_one(model: SharpModel, image: torch.Tensor, focal: float, steps: StepCounter) -> Gaussians:
    h, w, _ = image.shape
    size = model.internal_resolution
    pixels = image.to(device=model.device, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)
    resized = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=True)
    disparity_factor = torch.tensor([focal / w], device=model.device, dtype=torch.float32)
    ndc, disparity = model(resized, disparity_factor, progress=steps)
    del resized

    depth = disparity_factor / disparity[:, :1].clamp(min=1e-4, max=1e4)
    depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=True)[:, 0]
    # NDC (x z, y z, z) -> metres: x and y scale by W / (2 f) and H / (2 f), the inverse of SHARP's
    # pixel-to-NDC intrinsics at 1536 px; the map is diagonal, so covariances transform cheaply.
    unproject = torch.tensor([w / (2.0 * focal), h / (2.0 * focal), 1.0], device=model.device)
    quats, scales = linalg.transform_gaussian_frames(ndc.quats, ndc.scales, torch.diag(unproject))
    _check_finite_output(ndc, model)
    scene = Gaussians(
        means=ndc.means * unproject, scales=scales, quats=quats,
        colors=ndc.colors, opacities=ndc.opacities,
        focal_px=[focal], image_size=[(w, h)], depth=depth,
    )
    steps(UNPROJECTION_STAGE)
    return scene


def _check_finite_output(ndc, model: SharpModel) -> None:
    """Refuse a prediction holding NaN or infinity (fp16 overflow, corrupt weights) before anyone
    renders or saves it; one device sync per image."""
    fields = (ndc.means, ndc.scales, ndc.quats, ndc.colors, ndc.opacities)
    if not bool(torch.stack([torch.isfinite(t).all() for t in fields]).all()):
        hint = " (float16 overflows in this network: use bf16 or fp32)" if model.dtype == torch.float16 else ""
        raise RuntimeError(f"SHARP produced NaN or infinite Gaussians{hint}; the input and weights were finite.")
