"""sRGB <-> linear RGB transfer functions (IEC 61966-2-1), as SHARP uses them."""

from __future__ import annotations

import torch

__all__ = ["srgb_to_linear", "linear_to_srgb"]


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Decode sRGB values to linear light."""
    curve = ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(x <= 0.04045, x / 12.92, curve)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Encode linear light as sRGB values."""
    curve = 1.055 * x.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055
    return torch.where(x <= 0.0031308, x * 12.92, curve)
