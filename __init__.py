"""SHARP splats for ComfyUI: one photo -> 3D Gaussians (Apple's SHARP), novel views, PLY, preview.

ComfyUI imports this file as a package and reads the node mappings; `web/` is served to the front end.
"""

import importlib.util

WEB_DIRECTORY = "./web"


def _inside_comfyui() -> bool:
    """ComfyUI's own modules are importable: we were loaded as a custom node pack.

    Anywhere else (pytest collecting the repository, a script importing it) the nodes are not
    registered, since they need ComfyUI's `comfy` and `folder_paths`.
    """
    return bool(__package__) and all(importlib.util.find_spec(m) is not None for m in ("comfy", "folder_paths"))


if _inside_comfyui():
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    NODE_CLASS_MAPPINGS: dict = {}
    NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
