"""Edit Gaussians: crop, thin out and re-orient scenes for export and other viewers."""

from __future__ import annotations

from ..sharp_core import (
    OPENCV_TO_Y_UP, crop, decimate, drop_transparent, recenter as recenter_scene, rotation_from_euler_deg, stack_scenes, transform,
)
from .common import CATEGORY, GAUSSIANS, float_input

ORIENTATIONS = ("keep (OpenCV: y down, z forward)", "OpenCV -> y-up viewer")
RECENTER = ("off", "median", "mean")
NO_LIMIT = 1000.0  # metres; SHARP scenes span a few to a few hundred metres


class SharpEditGaussians:
    DESCRIPTION = (
        "Crops by depth or box, drops faint splats, keeps the N most visible (for VR / web viewers), then "
        "re-centres, rotates and scales. Applied in that order. Render before re-orienting: the camera "
        "paths assume SHARP's source-camera frame."
    )
    CATEGORY = CATEGORY
    FUNCTION = "edit"
    RETURN_TYPES = (GAUSSIANS,)
    RETURN_NAMES = ("gaussians",)
    OUTPUT_TOOLTIPS = ("The edited scene(s).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS, {"tooltip": "Scene(s) to edit."}),
                "min_depth": float_input(0.0, 0.0, NO_LIMIT, 0.01, "Drop splats nearer than this (metres along the view axis)."),
                "max_depth": float_input(0.0, 0.0, NO_LIMIT, 0.01, "Drop splats farther than this (metres); 0 = no limit."),
                "x_min": float_input(-NO_LIMIT, -NO_LIMIT, NO_LIMIT, 0.01, "Crop box, metres to the right of the source camera (min)."),
                "x_max": float_input(NO_LIMIT, -NO_LIMIT, NO_LIMIT, 0.01, "Crop box, metres to the right (max)."),
                "y_min": float_input(-NO_LIMIT, -NO_LIMIT, NO_LIMIT, 0.01, "Crop box, metres downwards (OpenCV y, min)."),
                "y_max": float_input(NO_LIMIT, -NO_LIMIT, NO_LIMIT, 0.01, "Crop box, metres downwards (max)."),
                "min_opacity": float_input(0.0, 0.0, 1.0, 0.01, "Drop splats fainter than this opacity (0 = keep all)."),
                "max_splats": ("INT", {
                    "default": 0, "min": 0, "max": 16_777_216, "step": 1000,
                    "tooltip": "Keep at most this many splats, the most visible from the source view "
                               "(opacity x covered area); 0 = keep all. ~300k suits VR and web viewers.",
                }),
                "recenter": (list(RECENTER), {"default": "off", "tooltip": "Move the scene's centre to the origin, where viewers orbit."}),
                "orientation": (list(ORIENTATIONS), {
                    "default": ORIENTATIONS[0],
                    "tooltip": "OpenCV -> y-up viewer turns the scene half a turn about x so it opens upright in "
                               "common 3DGS viewers.",
                }),
                "rotate_x": float_input(0.0, -180.0, 180.0, 0.5, "Extra rotation about x, degrees (applied first)."),
                "rotate_y": float_input(0.0, -180.0, 180.0, 0.5, "Extra rotation about y, degrees (second)."),
                "rotate_z": float_input(0.0, -180.0, 180.0, 0.5, "Extra rotation about z, degrees (third)."),
                "scale": float_input(1.0, 0.001, 1000.0, 0.01, "Uniform scale about the origin (after rotation)."),
            }
        }

    def edit(self, gaussians, min_depth: float = 0.0, max_depth: float = 0.0, x_min: float = -NO_LIMIT,
             x_max: float = NO_LIMIT, y_min: float = -NO_LIMIT, y_max: float = NO_LIMIT, min_opacity: float = 0.0,
             max_splats: int = 0, recenter: str = "off", orientation: str = ORIENTATIONS[0],
             rotate_x: float = 0.0, rotate_y: float = 0.0, rotate_z: float = 0.0, scale: float = 1.0):
        if orientation not in ORIENTATIONS:
            raise ValueError(f"Unknown orientation '{orientation}': choose one of {', '.join(ORIENTATIONS)}.")
        inf = float("inf")
        low = lambda v: -inf if v <= -NO_LIMIT else v  # noqa: E731  the widget's end stop means "no limit"
        high = lambda v: inf if v >= NO_LIMIT else v  # noqa: E731
        rotation = rotation_from_euler_deg(rotate_x, rotate_y, rotate_z)
        if orientation == ORIENTATIONS[1]:
            rotation = rotation @ OPENCV_TO_Y_UP
        turn = bool(rotate_x or rotate_y or rotate_z or orientation == ORIENTATIONS[1] or scale != 1.0)

        def edit_scenes(g):
            g = crop(
                g, depth_range=(min_depth or None, max_depth or None),
                box_min=(low(x_min), low(y_min), -inf), box_max=(high(x_max), high(y_max), inf),
            )
            g = drop_transparent(g, min_opacity)
            if max_splats > 0:
                g = decimate(g, max_splats)
            if recenter != "off":
                g = recenter_scene(g, recenter)
            if turn:
                g = transform(g, rotation=rotation, scale=scale)
            return g

        if gaussians.batch_size == 1:
            return (edit_scenes(gaussians),)
        # Scenes are cropped one by one (each may keep a different count), then batched again.
        edited = [edit_scenes(scene) for scene in gaussians.scenes()]
        counts = [s.num_gaussians for s in edited]
        if len(set(counts)) > 1:
            raise ValueError(
                f"The scenes of this batch keep different numbers of splats after the crop ({counts}); set "
                f"max_splats to at most {min(counts)} so every scene keeps the same count, or edit one scene at a time."
            )
        return (stack_scenes(edited),)


NODE_CLASS_MAPPINGS = {"SharpEditGaussians": SharpEditGaussians}
NODE_DISPLAY_NAME_MAPPINGS = {"SharpEditGaussians": "Edit Gaussians"}
