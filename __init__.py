"""SHARP splats for ComfyUI: one photo -> 3D Gaussians (Apple's SHARP), novel views, PLY, preview.

ComfyUI reads the node mappings and serves `web/` to the front end.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
