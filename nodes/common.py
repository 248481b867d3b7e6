"""Names and small helpers shared by the node modules."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

CATEGORY = "SHARP"
GAUSSIANS = "SHARP_GAUSSIANS"  # kept distinct from ComfyUI core's own GAUSSIAN type
MODEL = "SHARP_MODEL"


def float_input(default: float, low: float, high: float, step: float, tooltip: str) -> tuple[str, dict]:
    """A FLOAT widget spec for INPUT_TYPES."""
    return ("FLOAT", {"default": default, "min": low, "max": high, "step": step, "tooltip": tooltip})


def depth_to_image(depth: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(B, H, W) metric depth (metres, <= 0 = empty) -> (B, H, W, 3) IMAGE in [0, 1], near = bright.

    Inverse depth, min-max normalised over the whole batch so a frame sequence does not flicker;
    `size` = (height, width) resizes bilinearly first. Empty pixels become black.
    """
    depth = depth.float()
    if size is not None and tuple(depth.shape[-2:]) != tuple(size):
        depth = F.interpolate(depth.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    valid = depth > 0
    inverse = torch.where(valid, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    if bool(valid.any()):
        low, high = inverse[valid].min(), inverse[valid].max()
        inverse = torch.where(valid, (inverse - low) / (high - low).clamp_min(1e-12), inverse)
        if float(high - low) <= 1e-12:  # a flat plane: show it mid-grey instead of black
            inverse = torch.where(valid, torch.full_like(inverse, 0.5), inverse)
    return inverse.clamp(0, 1).unsqueeze(-1).expand(*inverse.shape, 3).contiguous()


def path_inside(path: str, folders: list[str]) -> bool:
    """True when `path` (after resolving links and ..) lies inside one of `folders`."""
    real = os.path.realpath(path)
    for folder in folders:
        root = os.path.realpath(folder)
        try:
            if os.path.commonpath((real, root)) == root:
                return True
        except ValueError:  # different drives on Windows
            continue
    return False
