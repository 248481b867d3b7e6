"""SHARP single-image-to-3D-Gaussians engine: plain PyTorch, no ComfyUI imports.

Public names are resolved lazily so `import sharp_core` stays cheap and never fails on an
optional backend (gsplat, CUDA).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Gaussians": "gaussians",
    "load_model": "checkpoint",
    "SharpModel": "network.model",
    "predict": "predict",
    "focal_px_from_mm": "predict",
    "focal_mm_from_exif": "exif",
    "save_ply": "ply",
    "load_ply": "ply",
    "Camera": "camera",
    "look_at": "camera",
    "render": "render",
    "render_many": "render",
    "RenderResult": "render",
    "move_camera": "trajectory",
    "keyframe_trajectory": "trajectory",
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
