"""Stand-in for `comfy_api/latest/_util/geometry_types.py` `SPLAT`: the real constructor signature,
field names and documented shapes (Comfy-Org/ComfyUI, 2026), written for the tests."""

from __future__ import annotations

import torch


class SPLAT:
    """A batch of render-ready 3D Gaussian splats, zero-padded to a common N.

    positions (B, N, 3) world-space centres; scales (B, N, 3) linear std-devs; rotations (B, N, 4)
    unit quaternions w, x, y, z; opacities (B, N, 1) in [0, 1]; sh (B, N, K, 3) SH coefficients with
    K = (degree + 1)^2 and the DC term sh[..., 0, :]; counts (B,) real lengths, or None.
    """

    def __init__(self, positions: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor,
                 opacities: torch.Tensor, sh: torch.Tensor, counts: torch.Tensor | None = None):
        self.positions = positions
        self.scales = scales
        self.rotations = rotations
        self.opacities = opacities
        self.sh = sh
        self.counts = counts

    def _comfy_cache_tensors(self):
        return self.positions, self.scales, self.rotations, self.opacities, self.sh, self.counts
