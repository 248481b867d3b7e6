"""From depth and features to Gaussians in SHARP's NDC frame.

The initializer places two layers of base Gaussians per 2x2 pixel block on the (normalised) monodepth
surfaces; the prediction head outputs per-Gaussian deltas; the composer applies SHARP's activations.
Means come out as (x_ndc * z, y_ndc * z, z) and scales in the same units, both multiplied back by the
depth normalisation (`global_scale`), ready for the unprojection to metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..color import srgb_to_linear

__all__ = ["PredictionHead", "BaseGaussians", "initialize", "compose", "NdcGaussians"]

# SHARP's delta multipliers (they act as per-attribute learning-rate scales during training).
DELTA_XY, DELTA_Z, DELTA_COLOR = 1e-3, 1e-3, 0.1
MAX_SCALE = 10.0  # scale multiplier range is (0, MAX_SCALE), 1 at delta 0
BASE_DEPTH_RANGE = (1.0, 100.0)  # normalised depth: nearest point at 1, clamped at 100


class PredictionHead(nn.Module):
    """1x1 convolutions: geometry features -> 3 mean deltas, texture features -> 11 other deltas."""

    def __init__(self, feature_dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.geometry_prediction_head = nn.Conv2d(feature_dim, 3 * num_layers, 1)
        self.texture_prediction_head = nn.Conv2d(feature_dim, 11 * num_layers, 1)

    def forward(self, texture: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """-> (B, 14, L, H, W): mean xyz, scale xyz, quaternion wxyz, colour rgb, opacity."""
        g = self.geometry_prediction_head(geometry).unflatten(1, (3, self.num_layers))
        t = self.texture_prediction_head(texture).unflatten(1, (11, self.num_layers))
        return torch.cat([g, t], dim=1)


@dataclass
class BaseGaussians:
    """Per-layer starting values, shaped (B, C, L, H, W) with C broadcastable."""

    x_ndc: torch.Tensor
    y_ndc: torch.Tensor
    disparity: torch.Tensor
    scales: torch.Tensor
    colors: torch.Tensor
    global_scale: torch.Tensor  # (B,) metres per normalised depth unit


@dataclass
class NdcGaussians:
    means: torch.Tensor  # (B, N, 3): x_ndc * z, y_ndc * z, z (metres)
    scales: torch.Tensor  # (B, N, 3)
    quats: torch.Tensor  # (B, N, 4), not normalised
    colors: torch.Tensor  # (B, N, 3) linear RGB
    opacities: torch.Tensor  # (B, N)


def initialize(image: torch.Tensor, depth: torch.Tensor, stride: int, num_layers: int) -> tuple[BaseGaussians, torch.Tensor]:
    """Base Gaussians and the decoder's (image, disparity) input.

    image: (B, 3, S, S) in [0, 1]; depth: (B, L, S, S) metric monodepth. Returns the base values and
    the feature input (B, 3 + L, S, S) in [-1, 1].
    """
    b, _, h, w = depth.shape
    nearest = depth.flatten(1).min(dim=1).values
    depth_factor = BASE_DEPTH_RANGE[0] / (nearest + 1e-6)
    depth = (depth * depth_factor[:, None, None, None]).clamp(max=BASE_DEPTH_RANGE[1])

    # Nearest surface in each stride x stride block (max-pooled disparity), one per depth layer.
    # Layer 0 sits on the first depth layer, later layers on the second (or on the first again).
    rest = depth if depth.shape[1] == 1 else depth[:, 1:]
    layer_depths = torch.cat([depth[:, :1]] + [rest] * (num_layers - 1), dim=1)
    disparity = F.max_pool2d(1.0 / layer_depths, stride, stride).unsqueeze(1)  # (B, 1, L, h, w)

    xs = (torch.arange(0.5 * stride, w, stride, device=depth.device) * 2 / w - 1.0)
    ys = (torch.arange(0.5 * stride, h, stride, device=depth.device) * 2 / h - 1.0)
    grid_shape = (1, 1, 1, ys.numel(), xs.numel())
    x_ndc = xs.view(1, 1, 1, 1, -1).expand(grid_shape)
    y_ndc = ys.view(1, 1, 1, -1, 1).expand(grid_shape)
    scales = (1.0 / disparity) * (2.0 * stride / float(w))
    colors = F.avg_pool2d(image, stride, stride).unsqueeze(2)  # same for every layer
    feature_input = torch.cat([image, 1.0 / depth], dim=1) * 2.0 - 1.0
    base = BaseGaussians(x_ndc, y_ndc, disparity, scales, colors, 1.0 / depth_factor)
    return base, feature_input


def _logit(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x / (1.0 - x))


def _inverse_softplus(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """softplus^-1, written as SHARP writes it (x + log(1 - e^-x)), for bit-level parity."""
    x = x.clamp_min(eps)
    s = torch.sigmoid(-x)
    return x + torch.log(1.0 - s / (1.0 - s))


def compose(base: BaseGaussians, delta: torch.Tensor, num_layers: int) -> NdcGaussians:
    """Apply SHARP's activations to base values + deltas (B, 14, L, H, W); flatten to (B, N, C)."""
    x = base.x_ndc + DELTA_XY * delta[:, 0:1]
    y = base.y_ndc + DELTA_XY * delta[:, 1:2]
    inverse_z = F.softplus(_inverse_softplus(base.disparity) + DELTA_Z * delta[:, 2:3])
    z = 1.0 / (inverse_z + 1e-3)
    means = torch.cat([z * x, z * y, z], dim=1)

    # Base scale follows the predicted depth; the multiplier is MAX_SCALE * sigmoid(a d + b), = 1 at d = 0.
    slope = MAX_SCALE / (MAX_SCALE - 1.0)
    offset = _logit(torch.tensor(1.0 / MAX_SCALE)).item()
    scales = (base.scales * base.disparity * z) * (MAX_SCALE * torch.sigmoid(slope * delta[:, 3:6] + offset))

    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], device=delta.device, dtype=delta.dtype)
    quats = identity.view(1, 4, 1, 1, 1) + delta[:, 6:10]
    base_colors = base.colors.clamp(0.01, 0.99)
    colors = srgb_to_linear(torch.sigmoid(_logit(base_colors) + DELTA_COLOR * delta[:, 10:13]))
    opacity_base = min(1.0 / num_layers, 0.5)
    opacities = torch.sigmoid(math.log(opacity_base / (1.0 - opacity_base)) + delta[:, 13])

    def flat(t: torch.Tensor) -> torch.Tensor:  # (B, C, L, H, W) -> (B, L*H*W, C)
        return t.permute(0, 2, 3, 4, 1).flatten(1, 3)

    gs = base.global_scale[:, None, None]
    return NdcGaussians(
        means=flat(means) * gs,
        scales=flat(scales) * gs,
        quats=flat(quats.expand(-1, -1, *delta.shape[2:])),
        colors=flat(colors),
        opacities=opacities.flatten(1),
    )
