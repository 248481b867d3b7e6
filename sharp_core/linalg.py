"""Quaternion and covariance helpers, batched over any leading dimensions."""

from __future__ import annotations

import torch

__all__ = [
    "rotations_from_quats",
    "covariances_from_quats_scales",
]


def rotations_from_quats(quats: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) rotation matrices."""
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def covariances_from_quats_scales(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions and (..., 3) standard deviations -> (..., 3, 3) R diag(s^2) R^T."""
    m = rotations_from_quats(quats) * scales.unsqueeze(-2)
    return m @ m.transpose(-1, -2)
