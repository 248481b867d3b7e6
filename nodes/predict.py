"""SHARP Predict: IMAGE batch -> one Gaussian scene per image, plus a depth preview and the focal."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import comfy.model_management as mm
import comfy.utils
import torch

from ..sharp_core import IN_MEMORY_SCENES, SceneSequenceWriter, check_images, predict, prediction_steps, stack_scenes
from .common import CATEGORY, GAUSSIANS, MODEL, depth_to_image

log = logging.getLogger(__name__)

FOCAL_UNITS = ("mm (35 mm equivalent)", "pixels")


def check_image(image) -> torch.Tensor:
    """The engine's image check (`sharp_core.check_images`) with the node's name on its errors."""
    if isinstance(image, torch.Tensor) and image.dim() != 4:
        raise ValueError(f"SHARP Predict expects an IMAGE batch shaped (B, H, W, C), got {tuple(image.shape)}.")
    try:
        return check_images(image)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"SHARP Predict: {exc}.") from None


def focal_arguments(focal_length: float, focal_unit: str, wired_focal_mm: float | None) -> dict[str, float]:
    """Keyword for `sharp_core.predict`: a wired 35 mm-equivalent value wins over the widget."""
    if wired_focal_mm is not None:
        value, unit, source = float(wired_focal_mm), FOCAL_UNITS[0], "the wired focal_length_mm input"
    else:
        value, unit, source = float(focal_length), focal_unit, "focal_length"
    if not value > 0:  # also catches NaN
        raise ValueError(f"Focal length from {source} is {value}; it must be greater than 0 ({unit}).")
    if unit == FOCAL_UNITS[0]:
        return {"focal_mm": value}
    if unit == FOCAL_UNITS[1]:
        return {"focal_px": value}
    raise ValueError(f"Unknown focal_unit '{unit}': choose one of {', '.join(FOCAL_UNITS)}.")


def stage_progress(bar, offset: int):
    """`sharp_core.predict`'s progress callback on ComfyUI's bar (the image's first step at `offset`),
    pressing Cancel between stages. No tensor is touched: no device sync."""

    def report(stage: str, done: int, total: int) -> None:
        bar.update_absolute(offset + done)
        mm.throw_exception_if_processing_interrupted()

    return report


def clip_writer(count: int) -> SceneSequenceWriter | None:
    """For more than IN_MEMORY_SCENES images (a video), a writer streaming the scenes into ComfyUI's temp
    folder, so SHARP Predict returns a disk-backed `SceneSequence` (sharp_core.sequence says why)."""
    if count <= IN_MEMORY_SCENES:
        return None
    import folder_paths  # ComfyUI's module

    return SceneSequenceWriter(Path(folder_paths.get_temp_directory()) / "sharp_clips" / uuid.uuid4().hex,
                               depth_device=mm.intermediate_device())


class SharpPredict:
    DESCRIPTION = (
        "Runs SHARP on each image: one feed-forward pass turns a photo into ~1.2 M metric 3D Gaussians "
        "(SHARP_GAUSSIANS, one scene per image)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "predict"
    RETURN_TYPES = (GAUSSIANS, "IMAGE", "FLOAT")
    RETURN_NAMES = ("gaussians", "depth", "focal_px")
    OUTPUT_TOOLTIPS = (
        "One Gaussian scene per input image, on the model's device (OpenCV frame, metres).",
        "Inverse-depth preview of each image (near = bright), same size as the input.",
        "Focal length in pixels of the input image, as SHARP used it.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "sharp_model": (MODEL, {"tooltip": "From Load SHARP Model."}),
                "image": ("IMAGE", {"tooltip": "Photo(s) to lift to 3D; every image becomes its own scene."}),
                "focal_length": ("FLOAT", {
                    "default": 30.0, "min": 0.1, "max": 100000.0, "step": 0.1,
                    "tooltip": "Focal length of the camera that took the photo, in focal_unit. 30 mm (35 mm "
                               "equivalent) suits most phone photos; ignored when focal_length_mm is wired.",
                }),
                "focal_unit": (list(FOCAL_UNITS), {
                    "default": FOCAL_UNITS[0],
                    "tooltip": "mm (35 mm equivalent) as in EXIF 'FocalLengthIn35mmFilm', or pixels of this image.",
                }),
            },
            "optional": {
                "focal_length_mm": ("FLOAT", {
                    "forceInput": True,
                    "tooltip": "35 mm-equivalent focal length, e.g. from Load Image (focal length); overrides the widget.",
                }),
            },
        }

    def predict(self, sharp_model, image: torch.Tensor, focal_length: float = 30.0,
                focal_unit: str = FOCAL_UNITS[0], focal_length_mm: float | None = None):
        rgb = check_image(image)
        focal = focal_arguments(focal_length, focal_unit, focal_length_mm)
        device = sharp_model.load_for_inference(batch_size=1)
        steps = prediction_steps(sharp_model.net)  # per image: patch windows, encoders, decoders, unprojection
        progress = comfy.utils.ProgressBar(rgb.shape[0] * steps)
        scenes = clip_writer(rgb.shape[0]) or []  # a clip streams its scenes to disk as they come
        for i in range(rgb.shape[0]):  # one image per pass: bounded memory, progress and Cancel between stages
            mm.throw_exception_if_processing_interrupted()
            with torch.inference_mode():
                scenes.append(predict(sharp_model.net, rgb[i].to(device, torch.float32), **focal,
                                      progress=stage_progress(progress, i * steps)))
            progress.update_absolute((i + 1) * steps)
        gaussians = stack_scenes(scenes) if isinstance(scenes, list) else scenes.finish()
        depth_maps = gaussians.depth if isinstance(scenes, list) else torch.stack(scenes.depths) if scenes.depths else None
        height, width = rgb.shape[1:3]
        if depth_maps is not None:
            depth = depth_to_image(depth_maps, size=(height, width))
        else:
            log.warning("SHARP Predict: the engine returned no depth map; the depth output is black.")
            depth = torch.zeros(rgb.shape[0], height, width, 3)
        return (gaussians, depth.to(mm.intermediate_device()), float(gaussians.focal_px[0]))


NODE_CLASS_MAPPINGS = {"SharpPredict": SharpPredict}
NODE_DISPLAY_NAME_MAPPINGS = {"SharpPredict": "SHARP Predict"}
