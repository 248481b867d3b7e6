"""Preview Gaussians node: writes a compact preview file to ComfyUI's temp folder for the web viewer.

The viewer (web/sharp_preview.js) reads the `sharp_preview` entries of the node's `ui` dict and
fetches each file through `/view`. `preview_ui` is shared with the Save Gaussians (PLY) node so a
user who only saves still sees the scene.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from ..sharp_core import PREVIEW_MAX_SPLATS, opening_view, parse_camera_views, write_preview
from .common import CAMERA, CATEGORY, GAUSSIANS

DEFAULT_MAX_SPLATS: int = PREVIEW_MAX_SPLATS

__all__ = ["SharpPreviewGaussians", "preview_ui", "CAMERA_VIEWS_INPUT", "max_splats_input", "PREVIEW_UI_KEY", "DEFAULT_MAX_SPLATS",
           "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

PREVIEW_UI_KEY = "sharp_preview"
CAMERA_VIEWS_INPUT = "camera_views"  # the widget web/sharp_preview.js fills
PREVIEW_SUFFIX = ".shpv"
_SUBFOLDER = "sharp_preview"


def preview_ui(gaussians, max_splats: int = DEFAULT_MAX_SPLATS,
               temp_dir: str | Path | None = None) -> dict[str, list[dict]]:
    """Write one preview file per scene into `temp_dir` (ComfyUI's temp folder by default).

    Returns the `ui` dict to merge into a node's result: {"sharp_preview": [entry, ...]}, each
    entry naming the file for `/view` (filename, subfolder, type="temp") and the scene's camera
    (focal_px, image_size [W, H]) plus splat counts. Values are lists because ComfyUI concatenates
    `ui` values across batches.
    """
    if not all(hasattr(gaussians, a) for a in ("scenes", "focal_px", "image_size")):  # duck-typed: the
        # pack may be imported under two package names, which breaks isinstance
        raise TypeError(f"preview_ui needs SHARP_GAUSSIANS (sharp_core.Gaussians), got {type(gaussians).__name__}.")
    if temp_dir is None:
        import folder_paths  # ComfyUI's module; imported here so sharp_core stays ComfyUI-free

        temp_dir = folder_paths.get_temp_directory()
    folder = Path(temp_dir) / _SUBFOLDER
    entries = []
    for scene in gaussians.scenes():
        name = f"sharp_{uuid.uuid4().hex[:16]}{PREVIEW_SUFFIX}"
        write_preview(scene, folder / name, max_splats=max_splats or None)
        kept = scene.num_gaussians if not max_splats else min(int(max_splats), scene.num_gaussians)
        entries.append({
            "filename": name, "subfolder": _SUBFOLDER, "type": "temp",
            "focal_px": scene.focal_px[0], "image_size": list(scene.image_size[0]),
            "splats": kept, "total_splats": scene.num_gaussians,
        })
    return {PREVIEW_UI_KEY: entries}


def max_splats_input() -> tuple[str, dict]:
    """The INT widget for the preview's splat budget (shared with Save Gaussians (PLY))."""
    return ("INT", {
        "default": DEFAULT_MAX_SPLATS, "min": 0, "max": 16_777_216, "step": 1000,
        "tooltip": "Splats shown in the 3D preview: at most this many, the most visible from the source "
                   "camera; 0 shows all. The default keeps the preview file under 16 MB.",
    })


class SharpPreviewGaussians:
    """Output node: shows the scene in the node's own WebGL2 viewer; outputs the views stored there.

    The viewer's "use view" / "add key view" buttons write JSON into the `camera_views` widget (the
    camera in the OpenCV frame of the Gaussians this node received: the preview stores positions in
    that frame unchanged). Changing the widget re-runs the node, so `camera` always follows it.
    """

    DESCRIPTION = ("Shows SHARP Gaussians in an interactive 3D viewer inside the node. The scene is "
                   "quantised to 16 bytes per splat and, above max_splats, reduced to the most visible splats. "
                   "Frame a shot in the viewer, press 'use view' (or add key views for a path) and wire "
                   "`camera` into SHARP Render.")
    CATEGORY = CATEGORY
    FUNCTION = "preview"
    OUTPUT_NODE = True
    RETURN_TYPES = (CAMERA,)
    RETURN_NAMES = ("camera",)
    OUTPUT_TOOLTIPS = ("The view(s) stored with the viewer's 'use view' / 'add key view' buttons (OpenCV "
                       "world_to_camera of this scene, vertical field of view, size); one view is one shot, "
                       "several are key views of a path. Without a stored view: the view the preview opens at.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS, {"tooltip": "Scene(s) from SHARP Predict or Load Gaussians."}),
                "max_splats": max_splats_input(),
            },
            "optional": {
                CAMERA_VIEWS_INPUT: ("STRING", {
                    "default": "", "multiline": False,
                    "tooltip": "JSON list of camera views, filled by the viewer's 'use view' / 'add key view' "
                               "buttons ('clear' empties it). Each view: world_to_camera (4 x 4, OpenCV axes, "
                               "metres), fov_y_deg, width, height.",
                }),
            },
        }

    def preview(self, gaussians, max_splats: int = DEFAULT_MAX_SPLATS, camera_views: str = ""):
        views = parse_camera_views(camera_views)  # first: a malformed value fails before any file is written
        ui = preview_ui(gaussians, max_splats)
        return {"ui": ui, "result": (views or [opening_view(gaussians)],)}


NODE_CLASS_MAPPINGS = {"SharpPreviewGaussians": SharpPreviewGaussians}
NODE_DISPLAY_NAME_MAPPINGS = {"SharpPreviewGaussians": "Preview Gaussians (SHARP)"}
