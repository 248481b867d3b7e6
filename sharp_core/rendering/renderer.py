"""Render Gaussian scenes on any device: gsplat on CUDA when it works, our tile rasterizer anywhere.

Image formation follows SHARP's render CLI: EWA splatting with gsplat's "classic" rules and the
CLI's `eps2d` (0: no 2D low-pass), front-to-back compositing of linear RGB, the background
composited in linear light, then one conversion to sRGB. Depth is the alpha-normalised expected
camera z of the splat centres (metres, 0 where nothing was hit).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..camera import Camera
from ..color import linear_to_srgb, srgb_to_linear
from ..gaussians import Gaussians
from . import torch_tiles
from .base import DEFAULT_MEMORY_BUDGET_MB, RasterSettings, SceneTensors
from .gsplat_backend import gsplat_import_error, rasterize_gsplat

__all__ = ["RenderResult", "render", "render_many"]

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "gsplat"]
_warned: set[str] = set()


@dataclass
class RenderResult:
    """What `render` returns; a leading frame axis F is present when several cameras were given.

    color: (H, W, 3) or (F, H, W, 3) sRGB in [0, 1], background included.
    depth: (H, W) or (F, H, W) metres, alpha-normalised expected depth, 0 where nothing was hit.
    alpha: (H, W) or (F, H, W) coverage in [0, 1].
    backend: "gsplat" or "torch"; compositor: "gsplat", "native" or "eager".
    timings: seconds per stage (projection, binning, compositing) for the torch backend, summed
        over frames.
    """

    color: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor
    backend: str = "torch"
    compositor: str = "eager"
    timings: dict[str, float] = field(default_factory=dict)


def render(
    gaussians: Gaussians,
    camera: Camera | Sequence[Camera],
    width: int,
    height: int,
    background: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0),
    backend: Backend = "auto",
    *,
    antialiased: bool = False,
    eps2d: float | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    scene: int = 0,
    compositor: Literal["auto", "native", "eager"] = "auto",
) -> RenderResult:
    """Draw scene `scene` of `gaussians` (the batch `load_ply`/`predict` return) from `camera`.

    Args:
        camera: one `Camera` (OpenCV convention; intrinsics for width x height), or a list of
            them for a batched result (see `render_many`).
        width, height: output size in pixels.
        background: sRGB colour in [0, 1]; it is converted to linear light and composited
            behind the splats before the final sRGB encoding.
        backend: "auto" picks gsplat for CUDA tensors when it imports and runs (one warning and
            the torch backend otherwise), the torch tile rasterizer elsewhere; "gsplat" or
            "torch" force one ("gsplat" raises when it cannot run).
        antialiased: gsplat's "antialiased" mode: a 2D low-pass (eps2d, default 0.3 px^2) with
            opacity compensation, which keeps small or distant splats from shimmering.
        eps2d: 2D low-pass added to each projected covariance (px^2); default SHARP's 0 for
            classic rendering, 0.3 when antialiased.
        near_plane, far_plane: camera-z range in metres outside which splats are dropped.
        memory_budget_mb: bound on the torch backend's working memory (pair lists and
            compositing temporaries are processed in chunks that fit).
        scene: which scene of a batch to draw (a batch is never silently merged).
        compositor: torch backend only: "native" (compiled loop, CPU), "eager" (tensor ops,
            any device) or "auto" (native on CPU when a C++ compiler is present).
    """
    settings = RasterSettings.create(
        antialiased=antialiased, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
        memory_budget_mb=memory_budget_mb, compositor=compositor,
    )
    if isinstance(camera, (list, tuple)):
        return _render_frames(gaussians, camera, width, height, background, backend, settings, scene)
    _check_inputs(gaussians, [camera], width, height, scene, backend)
    return _render_one(_scene_tensors(gaussians, scene), camera, int(width), int(height), background, backend, settings)


def render_many(
    gaussians: Gaussians,
    cameras: Sequence[Camera],
    width: int,
    height: int,
    background: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0),
    backend: Backend = "auto",
    **options,
) -> RenderResult:
    """Render one scene from many cameras; tensors gain a leading frame axis (F, H, W, ...).

    Frames are drawn one after another (each within the memory budget); `options` are those of
    `render`.
    """
    scene = options.pop("scene", 0)
    return _render_frames(gaussians, cameras, width, height, background, backend, RasterSettings.create(**options),
                          scene)


def _render_frames(gaussians, cameras, width, height, background, backend, settings: RasterSettings,
                   scene: int) -> RenderResult:
    if not cameras:
        raise ValueError("render_many needs at least one camera.")
    _check_inputs(gaussians, cameras, width, height, scene, backend)
    tensors = _scene_tensors(gaussians, scene)  # world covariances are shared by all frames
    frames = [_render_one(tensors, cam, int(width), int(height), background, backend, settings) for cam in cameras]
    timings: dict[str, float] = {}
    for frame in frames:
        for stage, seconds in frame.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    return RenderResult(
        color=torch.stack([f.color for f in frames]),
        depth=torch.stack([f.depth for f in frames]),
        alpha=torch.stack([f.alpha for f in frames]),
        backend=frames[0].backend,
        compositor=frames[0].compositor,
        timings=timings,
    )


def _render_one(
    tensors: SceneTensors, camera: Camera, width: int, height: int, background, backend: str,
    settings: RasterSettings,
) -> RenderResult:
    device = tensors.means.device
    intrinsics = camera.intrinsics.to(device=device, dtype=torch.float32)
    world_to_camera = camera.world_to_camera.to(device=device, dtype=torch.float32)
    args = (tensors, intrinsics, world_to_camera, width, height, settings)

    raster = None
    used_backend = "torch"
    if _wants_gsplat(backend, device):
        try:
            raster = rasterize_gsplat(*args)
            used_backend = "gsplat"
        except Exception as exc:
            if backend == "gsplat":
                raise
            _warn_once(
                "gsplat-failed",
                f"sharp_core.rendering: gsplat failed on {device} ({type(exc).__name__}: {exc}); "
                "falling back to the torch tile rasterizer.",
            )
    if raster is None:
        raster = torch_tiles.rasterize(*args)

    bg = _background_linear(background, device)
    alpha = 1.0 - raster.transmittance
    color_linear = raster.features[..., :3] + raster.transmittance[..., None] * bg
    color = linear_to_srgb(color_linear.clamp(min=0.0)).clamp(0.0, 1.0)
    depth = raster.features[..., 3] / alpha.clamp(min=1e-8)
    return RenderResult(
        color=color, depth=depth, alpha=alpha, backend=used_backend,
        compositor=raster.compositor, timings=dict(raster.timings),
    )


def _scene_tensors(gaussians: Gaussians, scene: int) -> SceneTensors:
    return SceneTensors(
        means=gaussians.means[scene].float(), quats=gaussians.quats[scene].float(),
        scales=gaussians.scales[scene].float(), opacities=gaussians.opacities[scene].float(),
        colors=gaussians.colors[scene].float(),
    )


def _check_inputs(gaussians, cameras, width, height, scene, backend) -> None:
    if not isinstance(gaussians, Gaussians):
        raise TypeError(
            f"render expects a sharp_core.Gaussians (from load_ply or predict), got {type(gaussians).__name__}."
        )
    for camera in cameras:
        if not isinstance(camera, Camera):
            raise TypeError(
                f"render expects a sharp_core.Camera (or a list of them), got {type(camera).__name__}; "
                "build one with Camera(intrinsics=K, world_to_camera=M) or Camera.scene_camera(...)."
            )
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"Output size must be positive, got {width} x {height}.")
    if not -gaussians.batch_size <= scene < gaussians.batch_size:
        raise IndexError(f"scene {scene} out of range for a batch of {gaussians.batch_size} scenes.")
    if backend not in ("auto", "torch", "gsplat"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'gsplat', got {backend!r}.")
    if backend == "gsplat":
        if gaussians.device.type != "cuda":
            raise ValueError(
                f"backend='gsplat' needs the Gaussians on a CUDA device (they are on {gaussians.device}); "
                "use backend='torch' or 'auto', or move them with gaussians.to('cuda')."
            )
        reason = gsplat_import_error()
        if reason:
            raise RuntimeError(f"backend='gsplat' requested but gsplat cannot be imported ({reason}); "
                               "install gsplat or use backend='auto'.")


def _wants_gsplat(backend: str, device: torch.device) -> bool:
    if backend == "gsplat":
        return True
    if backend != "auto" or device.type != "cuda":
        return False
    reason = gsplat_import_error()
    if reason:
        _warn_once("gsplat-missing", f"sharp_core.rendering: gsplat is unavailable ({reason}); "
                                     "rendering with the torch tile rasterizer instead.")
        return False
    return True


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _background_linear(background, device: torch.device) -> torch.Tensor:
    bg = torch.as_tensor(background, dtype=torch.float32, device=device).reshape(-1)
    if bg.numel() == 1:
        bg = bg.expand(3)
    if bg.numel() != 3:
        raise ValueError(f"background must be one sRGB value or three (r, g, b), got {bg.numel()} values.")
    return srgb_to_linear(bg.clamp(0.0, 1.0))
