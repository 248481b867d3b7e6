"""SHARP Render: frames of a camera path through each scene, as IMAGE / MASK / depth IMAGE."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch

from ..sharp_core import TRAJECTORY_KINDS, Camera, camera_path, keyframe_trajectory, move_camera, render
from .common import CATEGORY, GAUSSIANS, depth_to_image, float_input

CAMERA_PATHS = ("rotate_forward", "swipe", "shake", "rotate", "original", "custom")
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "gray": (0.5, 0.5, 0.5), "green": (0.0, 1.0, 0.0)}
BACKENDS = ("auto", "torch", "gsplat")
# SHARP's render CLI amplitudes, scaled by motion_scale
MAX_DISPARITY = 0.08
MAX_ZOOM = 0.15
MAX_SIZE = 8192


def even(pixels: int) -> int:
    """Round a size up to even: H.264 (Save Video's default codec) refuses odd widths and heights."""
    return pixels + pixels % 2


def cameras_for_path(scene, path: str, frames: int, width: int, height: int, motion_scale: float,
                     custom_move: dict[str, float]) -> list:
    """Map the node's widgets to `sharp_core` camera calls for one scene (a batch of one)."""
    if path == "original":
        return [Camera.scene_camera(scene, width, height)]
    if path == "custom":
        if frames == 1:  # a single frame is the pose itself, not the start of the move (the source view)
            return [move_camera(scene, width, height, **custom_move)]
        return keyframe_trajectory(scene, width, height, [custom_move], frames)
    if path in TRAJECTORY_KINDS:
        return camera_path(
            scene, path, frames, width, height,
            max_disparity=MAX_DISPARITY * motion_scale, max_zoom=MAX_ZOOM * motion_scale,
        )
    raise ValueError(f"Unknown camera_path '{path}': choose one of {', '.join(CAMERA_PATHS)}.")


class SharpRender:
    DESCRIPTION = (
        "Renders each scene along a camera path. Frames go straight into Create Video / Save Video or "
        "Save Animated WEBP; alpha is a MASK, depth an inverse-depth IMAGE."
    )
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("images", "alpha", "depth")
    OUTPUT_TOOLTIPS = (
        "Rendered frames (sRGB), all scenes one after the other.",
        "Coverage per frame: 1 where splats are, 0 on the background (invert it for Join Image with Alpha).",
        "Inverse depth per frame (near = bright), normalised over the whole sequence.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS, {"tooltip": "Scenes from SHARP Predict, Load Gaussians or Edit Gaussians."}),
                "camera_path": (list(CAMERA_PATHS), {
                    "default": "rotate_forward",
                    "tooltip": "SHARP's video moves (rotate_forward, swipe, shake, rotate), the source view "
                               "(original: one frame) or a move from the source view to the custom pose below.",
                }),
                "frames": ("INT", {"default": 60, "min": 1, "max": 2000, "tooltip": "Frames per scene (original: always 1)."}),
                "width": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 1,
                                  "tooltip": "Output width in pixels; 0 = the source photo's width (rounded up to even for video encoders)."}),
                "height": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 1,
                                   "tooltip": "Output height in pixels; 0 = the source photo's height (rounded up to even)."}),
                "background": (list(BACKGROUNDS), {"default": "black", "tooltip": "Colour behind the splats."}),
                "backend": (list(BACKENDS), {
                    "default": "auto",
                    "tooltip": "auto: gsplat on CUDA when installed, else the built-in PyTorch rasterizer.",
                }),
                "motion_scale": float_input(1.0, 0.0, 10.0, 0.05, "Amplitude of the preset moves (1 = SHARP's defaults)."),
                "yaw": float_input(0.0, -180.0, 180.0, 0.5, "custom: degrees, > 0 swings the camera right around the focus point."),
                "pitch": float_input(0.0, -90.0, 90.0, 0.5, "custom: degrees, > 0 raises the camera around the focus point."),
                "roll": float_input(0.0, -180.0, 180.0, 0.5, "custom: degrees, > 0 turns the view clockwise."),
                "offset_x": float_input(0.0, -100.0, 100.0, 0.01, "custom: metres to the camera's right."),
                "offset_y": float_input(0.0, -100.0, 100.0, 0.01, "custom: metres down (OpenCV y)."),
                "offset_z": float_input(0.0, -100.0, 100.0, 0.01, "custom: metres forward, into the scene."),
                "zoom": float_input(1.0, 0.05, 20.0, 0.01, "custom: focal length factor (2 = twice as close-up)."),
            }
        }

    def render(self, gaussians, camera_path: str = "rotate_forward", frames: int = 60, width: int = 0,
               height: int = 0, background: str = "black", backend: str = "auto", motion_scale: float = 1.0,
               yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, offset_x: float = 0.0,
               offset_y: float = 0.0, offset_z: float = 0.0, zoom: float = 1.0):
        if background not in BACKGROUNDS:
            raise ValueError(f"Unknown background '{background}': choose one of {', '.join(BACKGROUNDS)}.")
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}.")
        custom_move = {"yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll,
                       "x_m": offset_x, "y_m": offset_y, "z_m": offset_z, "zoom": zoom}
        device, out_device = mm.get_torch_device(), mm.intermediate_device()
        scenes = gaussians.scenes()
        sizes = [(width or even(s.image_size[0][0]), height or even(s.image_size[0][1])) for s in scenes]
        if len(set(sizes)) > 1:
            raise ValueError("The scenes have different source sizes; set width and height to render them together.")
        per_scene = 1 if camera_path == "original" else frames
        progress = comfy.utils.ProgressBar(len(scenes) * per_scene)
        colors, alphas, depths = [], [], []
        for scene, (w, h) in zip(scenes, sizes):
            cameras = cameras_for_path(scene, camera_path, frames, w, h, motion_scale, custom_move)
            scene = scene.to(device)
            for camera in cameras:  # one frame at a time: Cancel and progress between frames
                mm.throw_exception_if_processing_interrupted()
                with torch.inference_mode():
                    result = render(scene, camera.to(device), w, h,
                                       background=BACKGROUNDS[background], backend=backend)
                colors.append(result.color.to(out_device, torch.float32))
                alphas.append(result.alpha.to(out_device, torch.float32))
                depths.append(result.depth.to(out_device, torch.float32))
                progress.update(1)
        images = torch.stack(colors).clamp(0, 1)
        return images, torch.stack(alphas).clamp(0, 1), depth_to_image(torch.stack(depths))


NODE_CLASS_MAPPINGS = {"SharpRender": SharpRender}
NODE_DISPLAY_NAME_MAPPINGS = {"SharpRender": "SHARP Render"}
