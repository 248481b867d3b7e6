"""ComfyUI node classes of the pack, merged from one module per node family.

To add a family, write `nodes/<name>.py` with its own NODE_CLASS_MAPPINGS and
NODE_DISPLAY_NAME_MAPPINGS and add `<name>` to NODE_MODULES.
"""

from __future__ import annotations

import importlib

NODE_MODULES = ("model_loader", "predict", "load_image", "render", "ply_files", "edit", "preview", "mesh", "core_splat")

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

for _name in NODE_MODULES:
    _module = importlib.import_module(f".{_name}", __name__)
    _clash = set(_module.NODE_CLASS_MAPPINGS) & set(NODE_CLASS_MAPPINGS)
    if _clash:
        raise RuntimeError(f"nodes.{_name} redefines node ids {sorted(_clash)}")
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

from .model_loader import register_model_folder  # noqa: E402

register_model_folder()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODE_MODULES"]
