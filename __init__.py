"""SHARP splats for ComfyUI: one photo -> 3D Gaussians (Apple's SHARP), novel views, PLY, preview.

ComfyUI imports this file as a package and reads the node mappings; `web/` is served to the front end.
"""

WEB_DIRECTORY = "./web"

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # pytest imports a root __init__.py on its own (no parent package) while collecting tests/
    NODE_CLASS_MAPPINGS: dict = {}
    NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
