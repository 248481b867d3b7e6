"""gsplat (CUDA) backend: the rasterizer SHARP's own render CLI uses, called with its settings.

gsplat is optional: it is imported here, lazily, and any failure (not installed, no CUDA
toolkit for its JIT build, a kernel error) is reported to the caller, which falls back to the
torch backend.
"""

from __future__ import annotations

import torch

from .base import RasterOutput, RasterSettings, SceneTensors

__all__ = ["rasterize_gsplat", "gsplat_import_error"]

_import_error: str | None = None


def gsplat_import_error() -> str | None:
    """None when gsplat imports, else the reason it does not."""
    global _import_error
    if _import_error is None:
        try:
            import gsplat  # noqa: F401
        except Exception as exc:  # ImportError, or a JIT build error raised at import
            _import_error = f"{type(exc).__name__}: {exc}"
        else:
            _import_error = ""
    return _import_error or None


def rasterize_gsplat(
    scene: SceneTensors,
    intrinsics: torch.Tensor,
    world_to_camera: torch.Tensor,
    width: int,
    height: int,
    settings: RasterSettings,
) -> RasterOutput:
    """One view through gsplat.rasterization in "RGB+D" mode; the scene is on a CUDA device.

    intrinsics (3, 3) pixels and world_to_camera (4, 4), float32 on that device.
    """
    from gsplat.rendering import rasterization

    rgbd, alphas, _ = rasterization(
        means=scene.means,
        quats=scene.quats,
        scales=scene.scales,
        opacities=scene.opacities,
        colors=scene.colors,
        viewmats=world_to_camera[None],
        Ks=intrinsics[None],
        width=width,
        height=height,
        near_plane=settings.near_plane,
        far_plane=settings.far_plane,
        eps2d=settings.eps2d,
        render_mode="RGB+D",
        rasterize_mode="antialiased" if settings.antialiased else "classic",
        packed=False,
        absgrad=False,
    )
    return RasterOutput(
        features=rgbd[0], transmittance=1.0 - alphas[0, ..., 0], timings={}, compositor="gsplat"
    )
