"""SHARP -> Splat and Splat -> SHARP: converters to and from ComfyUI core's own splat type.

Newer ComfyUI ships a splat type with nodes that save, load, transform, merge, render and mesh splats:
`comfy_api.latest` `IO.Splat` (io_type "SPLAT", data class `Types.SPLAT`), called `IO.Gaussian` /
`Types.GAUSSIAN` (io_type "GAUSSIAN") before a rename. The two nodes exist only where the running
ComfyUI has one of them (feature-detected here at import, silently); elsewhere this module registers
nothing. The field mapping and what is lost are in `sharp_core.core_splat`.
"""

from __future__ import annotations

from ..sharp_core import DEFAULT_FOCAL_PX, DEFAULT_IMAGE_SIZE, Gaussians, gaussians_from_splat_tensors, splat_tensors
from .common import CATEGORY, GAUSSIANS

# Our source-camera data rides on the SPLAT object under this attribute (the core class is a plain
# object). Core nodes that build a new SPLAT (transform, merge) drop it, as they should.
SOURCE_ATTRIBUTE = "sharp_source"


def core_splat_type() -> tuple[str, type] | None:
    """(io_type, data class) of the running ComfyUI's splat type: IO.Splat / Types.SPLAT, else the
    pre-rename IO.Gaussian / Types.GAUSSIAN; None when this ComfyUI has neither (or no comfy_api)."""
    try:
        from comfy_api.latest import IO, Types
    except Exception:  # older ComfyUI (0.3.x has no `IO`), or no ComfyUI at all: no converters, no noise
        return None
    for io_name, class_name in (("Splat", "SPLAT"), ("Gaussian", "GAUSSIAN")):
        io_type, data_class = getattr(IO, io_name, None), getattr(Types, class_name, None)
        if io_type is not None and isinstance(data_class, type):
            return str(getattr(io_type, "io_type", class_name)), data_class
    return None


LOST = ("The source camera's focal length and image size and the depth map have no slot in the core type: "
        "they ride along on the object and come back in Splat -> SHARP unless a core node rebuilt the splat "
        "(Transform / Merge Splat), which drops them.")


def _converters(splat_io: str, splat_class: type) -> dict[str, type]:
    class SharpToSplat:
        DESCRIPTION = (
            "Hands SHARP scenes to ComfyUI's own splat nodes (save / render / transform / merge / mesh). Every "
            "splat keeps its position, size, rotation and opacity exactly; the linear colour becomes the sRGB "
            "DC coefficient the core type expects, and SH bands of a trained scene travel along. " + LOST
        )
        CATEGORY = CATEGORY
        FUNCTION = "convert"
        RETURN_TYPES = (splat_io,)
        RETURN_NAMES = ("splat",)
        OUTPUT_TOOLTIPS = ("The scene(s) as ComfyUI core's splat type (one batch item per scene).",)

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"gaussians": (GAUSSIANS, {"tooltip": "SHARP scene(s) to convert."})}}

        def convert(self, gaussians: Gaussians):
            fields = splat_tensors(gaussians)
            source = fields.pop("source")
            splat = splat_class(**fields)
            setattr(splat, SOURCE_ATTRIBUTE, source)
            return (splat,)

    class SplatToSharp:
        DESCRIPTION = (
            "Brings a splat from ComfyUI's own splat nodes (a loaded .ply / .spz / .ksplat, a TripoSplat "
            "result, ...) into the SHARP nodes. Scenes of different sizes are padded with invisible splats. "
            + LOST + " Otherwise focal_px / width / height below apply (0 = 512 px, 640 x 480)."
        )
        CATEGORY = CATEGORY
        FUNCTION = "convert"
        RETURN_TYPES = (GAUSSIANS,)
        RETURN_NAMES = ("gaussians",)
        OUTPUT_TOOLTIPS = ("The splat batch as SHARP scenes (on the splat's device, in its dtype).",)

        @classmethod
        def INPUT_TYPES(cls):
            return {
                "required": {
                    "splat": (splat_io, {"tooltip": "A splat from ComfyUI core's splat nodes."}),
                    "focal_px": ("FLOAT", {
                        "default": 0.0, "min": 0.0, "max": 100000.0, "step": 1.0,
                        "tooltip": "Source camera focal length in pixels, for SHARP Render's camera paths. 0 = the "
                                   "value carried from SHARP -> Splat, else 512.",
                    }),
                    "width": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1,
                                      "tooltip": "Source image width in pixels; 0 = carried value, else 640."}),
                    "height": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1,
                                       "tooltip": "Source image height in pixels; 0 = carried value, else 480."}),
                }
            }

        def convert(self, splat, focal_px: float = 0.0, width: int = 0, height: int = 0):
            batch = splat.positions.shape[0]
            source = getattr(splat, SOURCE_ATTRIBUTE, None)
            if not isinstance(source, dict) or len(source.get("focal_px", ())) != batch:
                source = {"focal_px": [DEFAULT_FOCAL_PX] * batch, "image_size": [DEFAULT_IMAGE_SIZE] * batch, "depth": None}
            focal = [focal_px] * batch if focal_px > 0 else source["focal_px"]
            sizes = [(width or w, height or h) for w, h in source["image_size"]]
            depth = source.get("depth")
            if depth is not None and depth.shape[0] != batch:
                depth = None
            return (gaussians_from_splat_tensors(
                splat.positions, splat.scales, splat.rotations, splat.opacities, splat.sh,
                getattr(splat, "counts", None), focal_px=focal, image_size=sizes, depth=depth,
            ),)

    return {"SharpToSplat": SharpToSplat, "SplatToSharp": SplatToSharp}


_CORE = core_splat_type()
NODE_CLASS_MAPPINGS: dict[str, type] = {} if _CORE is None else _converters(*_CORE)
NODE_DISPLAY_NAME_MAPPINGS = {
    name: label for name, label in (("SharpToSplat", "SHARP -> Splat"), ("SplatToSharp", "Splat -> SHARP"))
    if name in NODE_CLASS_MAPPINGS
}
