"""SHARP Render: frames of a camera path (or the viewer's key views) through each scene, mono or stereo, as
IMAGE / MASK / depth IMAGE; a clip's scenes one frame each along one path ("scene i at camera i").

The maths lives in sharp_core (trajectory, view_path, stereo, sequence); this module maps widgets to it.
Scenes are walked one at a time (`iter_scenes`), so a disk-backed clip from SHARP Predict never sits in memory."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch

from ..sharp_core import (
    STEREO_MODES, TRAJECTORY_KINDS, Camera, camera_path, interpolate_views, iter_scenes,
    keyframe_trajectory, median_depth, move_camera, parse_camera_views, render, render_stereo, view_size,
)
from ..sharp_core import align_scale as align_to_depth  # the node's widget is also called align_scale
from .common import CAMERA, CATEGORY, GAUSSIANS, depth_to_image, float_input

CAMERA_PATHS = ("rotate_forward", "swipe", "shake", "rotate", "original", "custom")
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "gray": (0.5, 0.5, 0.5), "green": (0.0, 1.0, 0.0)}
BACKENDS = ("auto", "torch", "gsplat")
# SHARP's render CLI amplitudes, scaled by motion_scale
MAX_DISPARITY = 0.08
MAX_ZOOM = 0.15
MAX_SIZE = 8192
SEQUENCE_MODES = ("all frames per scene", "scene i at camera i")


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
        "Renders each scene along a camera path, or the viewer's camera, optionally in stereo (side-by-side, "
        "top-bottom, anaglyph). 'scene i at camera i' turns a clip's scenes into one moving shot. Frames go "
        "straight into Create Video / Save Video or Save Animated WEBP; alpha is a MASK, depth an inverse-depth IMAGE."
    )
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("images", "alpha", "depth")
    OUTPUT_TOOLTIPS = (
        "Rendered frames (sRGB), all scenes one after the other; stereo frames packed (left eye first).",
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
                               "(original: one frame) or a move from the source view to the custom pose below. "
                               "Ignored when a camera is given.",
                }),
                "frames": ("INT", {"default": 60, "min": 1, "max": 2000,
                                   "tooltip": "Frames per scene (original and a single camera view: always 1; "
                                              "'scene i at camera i': one per scene)."}),
                "width": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 1,
                                  "tooltip": "Output width in pixels (per eye before stereo packing); 0 = the source "
                                             "photo's width (rounded up to even for video encoders)."}),
                "height": ("INT", {"default": 0, "min": 0, "max": MAX_SIZE, "step": 1,
                                   "tooltip": "Output height in pixels (per eye); 0 = the source photo's height "
                                              "(rounded up to even)."}),
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
            },
            "optional": {  # optional, so prompts written before these inputs existed still validate
                "stereo": (list(STEREO_MODES), {
                    "default": "off",
                    "tooltip": "Two eyes with parallel axes (no keystone), left eye first: side-by-side (2 x width), "
                               "side-by-side half width (squeezed, for 3D TVs), top-bottom (2 x height, for VR "
                               "players) or a red-cyan anaglyph.",
                }),
                "interaxial_mm": float_input(63.0, 0.0, 10000.0, 1.0,
                                             "Distance between the eyes in millimetres; SHARP's scenes are metric, so "
                                             "63 mm looks life-size. Larger = stronger depth."),
                "convergence_m": float_input(0.0, 0.0, 10000.0, 0.1,
                                             "Distance in metres that appears on the screen plane (nearer pops out, "
                                             "farther recedes); 0 = the median depth of the source view."),
                "sequence": (list(SEQUENCE_MODES), {
                    "default": SEQUENCE_MODES[0],
                    "tooltip": "all frames per scene: the whole path through every scene. scene i at camera i: a "
                               "clip's scenes (a video through SHARP Predict) played along one path, one frame each: "
                               "a moving 3D shot over the video.",
                }),
                "align_scale": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "scene i at camera i: scale every scene about its camera so its median depth matches "
                               "the first scene's, so SHARP's frame-to-frame scale drift does not make the move pump.",
                }),
                "camera": (CAMERA, {
                    "tooltip": "Camera views from the viewer's 'use this view' (SHARP_CAMERA): one view renders that "
                               "shot, several are interpolated over frames. Overrides camera_path.",
                }),
                "camera_json": ("STRING", {
                    "default": "", "multiline": True,
                    "tooltip": "The same camera typed by hand: JSON of a view {world_to_camera (4 x 4, OpenCV, "
                               "metres), fov_y_deg, width, height} or a list of them. Used when camera is not wired.",
                }),
            },
        }

    def render(self, gaussians, camera_path: str = "rotate_forward", frames: int = 60, width: int = 0,
               height: int = 0, background: str = "black", backend: str = "auto", motion_scale: float = 1.0,
               yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, offset_x: float = 0.0,
               offset_y: float = 0.0, offset_z: float = 0.0, zoom: float = 1.0, stereo: str = "off",
               interaxial_mm: float = 63.0, convergence_m: float = 0.0, sequence: str = SEQUENCE_MODES[0],
               align_scale: bool = True, camera=None, camera_json: str = ""):
        for name, value, choices in (("background", background, BACKGROUNDS), ("stereo", stereo, STEREO_MODES),
                                     ("sequence", sequence, SEQUENCE_MODES)):
            if value not in choices:
                raise ValueError(f"Unknown {name} '{value}': choose one of {', '.join(choices)}.")
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}.")
        if not interaxial_mm >= 0 or not convergence_m >= 0:  # also NaN
            raise ValueError(f"SHARP Render: interaxial_mm ({interaxial_mm}) and convergence_m ({convergence_m}) must "
                             "be >= 0 (convergence 0 = the source view's median depth).")
        views = parse_camera_views(camera) if camera not in (None, "", []) else parse_camera_views(camera_json or "")
        per_frame = sequence == SEQUENCE_MODES[1]
        sources = list(gaussians.image_size)
        if not per_frame and len(set(sources)) > 1 and not (width and height):
            raise ValueError("The scenes have different source sizes; set width and height to render them together.")
        w, h = output_size(views, sources[0], width, height)
        if per_frame:
            count = len(sources)
        elif views:
            count = len(sources) * (frames if len(views) > 1 else 1)
        else:
            count = len(sources) * (1 if camera_path == "original" else frames)
        progress = comfy.utils.ProgressBar(count)
        custom_move = {"yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll,
                       "x_m": offset_x, "y_m": offset_y, "z_m": offset_z, "zoom": zoom}
        device, out_device = mm.get_torch_device(), mm.intermediate_device()
        colors, alphas, depths = [], [], []
        reference_depth, cameras, convergence = None, None, None
        for index, scene in enumerate(iter_scenes(gaussians)):  # one scene in memory at a time (clips stream)
            mm.throw_exception_if_processing_interrupted()
            scene = scene.to(device)
            if per_frame:
                if reference_depth is None:  # the first scene fixes the path, the scale and the convergence
                    reference_depth = median_depth(scene)
                    cameras = scene_cameras(scene, views, camera_path, len(sources), w, h, motion_scale, custom_move,
                                            exact=True)
                elif align_scale:
                    scene, _ = align_to_depth(scene, reference_depth)
                frame_cameras = [cameras[index]]
            else:
                frame_cameras = scene_cameras(scene, views, camera_path, frames, w, h, motion_scale, custom_move)
            if stereo != "off" and (convergence is None or not per_frame):
                convergence = convergence_m or median_depth(scene)
            for frame_camera in frame_cameras:  # one frame at a time: Cancel and progress between frames
                mm.throw_exception_if_processing_interrupted()
                with torch.inference_mode():
                    options = {"background": BACKGROUNDS[background], "backend": backend}
                    if stereo == "off":
                        result = render(scene, frame_camera.to(device), w, h, **options)
                    else:
                        result = render_stereo(scene, frame_camera.to(device), w, h, stereo, interaxial_mm / 1000.0,
                                               convergence, **options)
                colors.append(result.color.to(out_device, torch.float32))
                alphas.append(result.alpha.to(out_device, torch.float32))
                depths.append(result.depth.to(out_device, torch.float32))
                progress.update(1)
            del scene
        images = torch.stack(colors).clamp(0, 1)
        return images, torch.stack(alphas).clamp(0, 1), depth_to_image(torch.stack(depths))


def output_size(views: list[dict], source: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """Render size per eye: the widgets; 0 = the source photo's size, or with a camera view its aspect ratio at
    the source photo's height (so the shot is framed as in the viewer); derived sizes rounded up to even."""
    if not views:
        return width or even(source[0]), height or even(source[1])
    if width and height:
        return width, height
    w, h = view_size(views[0], width, height if (height or width) else source[1])
    return (w if width else even(w)), (h if height else even(h))


def scene_cameras(scene, views: list[dict], path: str, frames: int, width: int, height: int, motion_scale: float,
                  custom_move: dict[str, float], exact: bool = False) -> list:
    """The cameras for one scene: the key views interpolated over `frames` (a single view: that shot, once) or
    the camera path. `exact`: always `frames` cameras (a still shot repeated), for one camera per clip frame."""
    if views:
        cameras = interpolate_views(views, frames if len(views) > 1 else 1, width, height)
    else:
        cameras = cameras_for_path(scene, path, frames, width, height, motion_scale, custom_move)
    return cameras * frames if exact and len(cameras) == 1 else cameras


NODE_CLASS_MAPPINGS = {"SharpRender": SharpRender}
NODE_DISPLAY_NAME_MAPPINGS = {"SharpRender": "SHARP Render"}
