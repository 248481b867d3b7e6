"""What every rendering backend shares: the scene tensors it draws, the raster it returns, the
settings it honours and the image-formation constants (gsplat's "classic" 3DGS rules).

Conventions: cameras are OpenCV pinholes (x right, y down, z forward, metres); pixel (i, j) has its
centre at (j + 0.5, i + 0.5); colours are composited in LINEAR light, front to back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch

from ..linalg import covariances_from_quats_scales

__all__ = [
    "SceneTensors", "RasterOutput", "RasterSettings", "TILE_SIZE", "ALPHA_MIN", "ALPHA_MAX", "TRANSMITTANCE_MIN",
    "MAX_EXTEND_SIGMA", "FOV_MARGIN", "SHARP_EPS2D", "ANTIALIASED_EPS2D", "DEFAULT_MEMORY_BUDGET_MB",
]

TILE_SIZE = 16
ALPHA_MIN = 1.0 / 255.0  # splats fainter than this at a pixel are skipped
ALPHA_MAX = 0.999  # one splat never hides everything behind it
TRANSMITTANCE_MIN = 1e-4  # a pixel stops before the splat that would bring T to <= this
MAX_EXTEND_SIGMA = 3.33  # splat extent in standard deviations (opacity-aware below it)
FOV_MARGIN = 0.3  # Jacobian clamp: 30 % of the half field of view beyond the image border
SHARP_EPS2D = 0.0  # SHARP's renderer passes low_pass_filter_eps = 0 to gsplat
ANTIALIASED_EPS2D = 0.3  # gsplat's default low-pass, the one its antialiased mode is built for
DEFAULT_MEMORY_BUDGET_MB = 1536.0


@dataclass
class SceneTensors:
    """One scene's splats as float32 tensors on its device; the world covariances are computed
    once and shared by every camera that draws the scene.

    means (N, 3) metres; quats (N, 4) (w, x, y, z) unit; scales (N, 3) linear std-devs in metres;
    opacities (N,) in [0, 1]; colors (N, 3) linear RGB.
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor

    @cached_property
    def covariances(self) -> torch.Tensor:
        """(N, 3, 3) world-space covariances R diag(s^2) R^T."""
        return covariances_from_quats_scales(self.quats, self.scales)


@dataclass
class RasterOutput:
    """One view before background and sRGB encoding.

    features (H, W, 4): sum over splats of weight x (linear R, G, B, camera z in metres);
    transmittance (H, W): what is left after the last splat (1 = nothing hit);
    timings: seconds per stage; compositor: "gsplat", "native" or "eager".
    """

    features: torch.Tensor
    transmittance: torch.Tensor
    timings: dict[str, float]
    compositor: str


@dataclass(frozen=True)
class RasterSettings:
    """How a backend draws a view (the keyword options of `render`).

    eps2d: 2D low-pass added to each projected covariance (px^2); antialiased: gsplat's
    antialiased mode (opacity compensation for that low-pass); near_plane, far_plane: camera-z
    range in metres; memory_budget_mb: bound on the torch backend's working memory;
    compositor: torch backend only, "auto", "native" (compiled, CPU) or "eager" (tensor ops).
    """

    eps2d: float = SHARP_EPS2D
    antialiased: bool = False
    near_plane: float = 0.01
    far_plane: float = 1e10
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB
    compositor: Literal["auto", "native", "eager"] = "auto"

    @classmethod
    def create(cls, *, antialiased: bool = False, eps2d: float | None = None, near_plane: float = 0.01,
               far_plane: float = 1e10, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
               compositor: str = "auto") -> RasterSettings:
        """Settings from `render`'s keywords; eps2d defaults to SHARP's 0, or 0.3 when antialiased."""
        if compositor not in ("auto", "native", "eager"):
            raise ValueError(f"compositor must be 'auto', 'native' or 'eager', got {compositor!r}.")
        if eps2d is None:
            eps2d = ANTIALIASED_EPS2D if antialiased else SHARP_EPS2D
        return cls(eps2d=float(eps2d), antialiased=bool(antialiased), near_plane=float(near_plane),
                   far_plane=float(far_plane), memory_budget_mb=float(memory_budget_mb), compositor=compositor)
