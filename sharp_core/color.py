"""sRGB <-> linear RGB transfer functions (IEC 61966-2-1), as SHARP uses them, and the degree-0
spherical-harmonic (DC) colour coefficient of 3DGS files and tools."""

from __future__ import annotations

import torch

__all__ = ["srgb_to_linear", "linear_to_srgb", "SH_C0", "sh_dc_from_linear", "linear_from_sh_dc"]

# Degree-0 real spherical harmonic, sqrt(1 / (4 pi)): a splat's display colour is dc * SH_C0 + 0.5.
SH_C0 = 0.28209479177387814


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Decode sRGB values to linear light."""
    curve = ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(x <= 0.04045, x / 12.92, curve)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Encode linear light as sRGB values."""
    curve = 1.055 * x.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055
    return torch.where(x <= 0.0031308, x * 12.92, curve)


def sh_dc_from_linear(colors: torch.Tensor) -> torch.Tensor:
    """Linear RGB (..., 3) -> the DC coefficient whose decode dc * SH_C0 + 0.5 is the display sRGB colour.

    Computed in at least float32 and returned in the input's dtype.
    """
    work = colors.to(torch.promote_types(colors.dtype, torch.float32))
    return ((linear_to_srgb(work) - 0.5) / SH_C0).to(colors.dtype)


def linear_from_sh_dc(dc: torch.Tensor) -> torch.Tensor:
    """Inverse of `sh_dc_from_linear`: DC coefficients (..., 3) -> linear RGB, not clamped (a trained
    scene's DC may lie outside [0, 1] with the higher bands bringing the seen colour back)."""
    work = dc.to(torch.promote_types(dc.dtype, torch.float32))
    return srgb_to_linear(work * SH_C0 + 0.5).to(dc.dtype)
