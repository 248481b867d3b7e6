"""SHARP single-image-to-3D-Gaussians engine: plain PyTorch, no ComfyUI imports.

Public names are resolved lazily so `import sharp_core` stays cheap and never fails on an
optional backend (gsplat, CUDA). No public function shares its module's name (`predict` lives in
`prediction`, `render` in `rendering`): importing a submodule binds it on the package and would
otherwise shadow the function.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Gaussians": "gaussians",
    "load_model": "checkpoint",
    "SharpModel": "network.model",
    "predict": "prediction",
    "focal_px_from_mm": "prediction",
    "focal_mm_from_exif": "exif",
    "save_ply": "ply",
    "load_ply": "ply",
    "Camera": "camera",
    "look_at": "camera",
    "render": "rendering",
    "render_many": "rendering",
    "RenderResult": "rendering",
    "write_preview": "preview_file",
    "read_preview": "preview_file",
    "move_camera": "trajectory",
    "keyframe_trajectory": "trajectory",
    "camera_path": "trajectory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sharp_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
