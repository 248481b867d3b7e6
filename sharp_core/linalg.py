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


def transform_gaussian_frames(quats: torch.Tensor, scales: torch.Tensor, linear: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TEMPORARY (float64 eigh) until the fast decomposition lands. linear: (3,) diagonal or (3, 3)."""
    m = (torch.diag(linear) if linear.dim() == 1 else linear).double()
    cov = m @ covariances_from_quats_scales(quats.double(), scales.double()) @ m.T.double()
    evals, evecs = torch.linalg.eigh(cov.double())
    evals, evecs = evals.flip(-1), evecs.flip(-1)
    evecs = evecs * torch.linalg.det(evecs).sign()[..., None, None]
    R = evecs
    w = torch.sqrt((1 + R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]).clamp(min=1e-12)) / 2
    q = torch.stack([w, (R[..., 2, 1] - R[..., 1, 2]) / (4 * w), (R[..., 0, 2] - R[..., 2, 0]) / (4 * w), (R[..., 1, 0] - R[..., 0, 1]) / (4 * w)], -1)
    return q.float(), evals.clamp(min=0).sqrt().float()
