"""Gaussians <-> the render-ready splat tensors of ComfyUI core's SPLAT type (plain tensors, no ComfyUI).

ComfyUI core (`comfy_api.latest` `Types.SPLAT`, before the rename `Types.GAUSSIAN`) holds a batch as
    positions (B, N, 3)   world-space centres; the frame is 3DGS's (y down, z forward), i.e. ours
    scales    (B, N, 3)   linear per-axis standard deviations
    rotations (B, N, 4)   unit quaternions w, x, y, z
    opacities (B, N, 1)   in [0, 1]
    sh        (B, N, K, 3) SH coefficients, K = (degree + 1)^2; sh[..., 0, :] * C0 + 0.5 is the display
                          (sRGB-encoded) colour, the higher bands are the 3DGS files' (our `sh_rest`)
    counts    (B,) int64 real splat count per scene when the scenes are zero-padded to a common N,
              else None.
So every field maps one to one, with the colour re-encoded: ours is linear RGB, theirs the sRGB DC.

What has no slot there: the source camera's focal length and image size and the metric depth map.
`splat_tensors` returns them in `source` so the ComfyUI node can ride them along on the SPLAT object;
a SPLAT built elsewhere (or rebuilt by a core node) has none, and `gaussians_from_splat_tensors` then
uses the values given or the PLY reader's defaults (512 px, 640 x 480).

Batches of different sizes: our `Gaussians` holds one N for the whole batch, so shorter scenes are
padded with invisible splats (opacity 0, zero size, identity rotation, at the origin, black). Going
back, a run of such splats at a scene's end is dropped again and reported in `counts`, so a padded
SPLAT batch survives SPLAT -> SHARP -> SPLAT exactly (dropping splats that draw nothing loses nothing).
"""

from __future__ import annotations

import torch

from .color import linear_from_sh_dc, sh_dc_from_linear
from .formats.ply import DEFAULT_FOCAL_PX, DEFAULT_IMAGE_SIZE
from .gaussians import SH_REST_COUNTS, Gaussians

__all__ = ["splat_tensors", "gaussians_from_splat_tensors", "DEFAULT_FOCAL_PX", "DEFAULT_IMAGE_SIZE"]


def splat_tensors(g: Gaussians) -> dict:
    """The core SPLAT fields of `g` (same device and dtype): positions, scales, rotations, opacities,
    sh, counts (see the module docstring), plus `source` = {"focal_px", "image_size", "depth"}."""
    lengths = _real_lengths(g.opacities, g.scales)
    n = max(lengths)
    if n == 0:  # nothing but invisible splats: keep them rather than an empty batch
        n, lengths = g.num_gaussians, [g.num_gaussians] * g.batch_size
    keep = slice(0, n)
    sh = sh_dc_from_linear(g.colors[:, keep]).unsqueeze(2)
    if g.sh_rest is not None:
        sh = torch.cat((sh, g.sh_rest[:, keep].to(sh.dtype)), dim=2)
    fields = {
        "positions": g.means[:, keep], "scales": g.scales[:, keep], "rotations": g.quats[:, keep],
        "opacities": g.opacities[:, keep].unsqueeze(-1), "sh": sh, "counts": None,
    }
    if len(set(lengths)) > 1:  # zero-pad like core's own batches (MergeSplat), with real counts
        counts = torch.tensor(lengths, dtype=torch.int64, device=g.device)
        real = torch.arange(n, device=g.device).unsqueeze(0) < counts.unsqueeze(1)  # (B, n)
        for name in ("positions", "scales", "rotations", "opacities", "sh"):
            t = fields[name]
            fields[name] = torch.where(real.view(*real.shape, *([1] * (t.dim() - 2))), t, torch.zeros_like(t))
        fields["counts"] = counts
    fields["source"] = {"focal_px": list(g.focal_px), "image_size": list(g.image_size), "depth": g.depth}
    return fields


def gaussians_from_splat_tensors(
    positions: torch.Tensor,
    scales: torch.Tensor,
    rotations: torch.Tensor,
    opacities: torch.Tensor,
    sh: torch.Tensor,
    counts: torch.Tensor | None = None,
    *,
    focal_px: float | list[float] | None = None,
    image_size: tuple[int, int] | list[tuple[int, int]] | None = None,
    depth: torch.Tensor | None = None,
) -> Gaussians:
    """A `Gaussians` batch from core SPLAT fields (shapes in the module docstring; opacities may also
    be (B, N)). Scenes shorter than the longest (by `counts`) are padded with invisible splats.
    focal_px / image_size: per scene or one for all; None = 512 px / 640 x 480. Raises ValueError
    naming the field whose shape or values do not fit."""
    if positions.dim() != 3 or positions.shape[-1] != 3:
        raise ValueError(f"splat positions have shape {tuple(positions.shape)}, expected (B, N, 3).")
    b, n = positions.shape[:2]
    if opacities.dim() == 3 and opacities.shape[-1] == 1:
        opacities = opacities.squeeze(-1)
    expected = {"scales": (scales, (b, n, 3)), "rotations": (rotations, (b, n, 4)), "opacities": (opacities, (b, n))}
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"splat {name} have shape {tuple(tensor.shape)}, expected {shape} "
                             f"(opacities may also be {(b, n, 1)}).")
    if sh.dim() != 4 or tuple(sh.shape[:2]) != (b, n) or sh.shape[3] != 3 or sh.shape[2] - 1 not in SH_REST_COUNTS:
        raise ValueError(f"splat sh has shape {tuple(sh.shape)}, expected ({b}, {n}, K, 3) with K = 1, 4, 9 or 16 "
                         "(SH degree 0-3).")
    lengths = [n] * b
    if counts is not None:
        lengths = [int(c) for c in torch.as_tensor(counts).reshape(-1).tolist()]
        if len(lengths) != b or any(not 0 <= c <= n for c in lengths):
            raise ValueError(f"splat counts {lengths} do not fit a batch of {b} scenes of at most {n} splats.")
    keep_n = max(lengths)
    if keep_n == 0:
        raise ValueError("The splat batch holds no splats (every count is 0).")
    real = (torch.arange(keep_n, device=positions.device).unsqueeze(0)
            < torch.tensor(lengths, device=positions.device).unsqueeze(1))  # (B, keep_n)

    def pad(t: torch.Tensor, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
        t = t[:, :keep_n]
        mask = real.view(b, keep_n, *([1] * (t.dim() - 2)))
        return torch.where(mask, t, torch.as_tensor(fill, dtype=t.dtype, device=t.device))

    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=rotations.dtype, device=rotations.device)
    sh = pad(sh)
    rest = sh[:, :, 1:] if sh.shape[2] > 1 else None
    return Gaussians(
        means=pad(positions), scales=pad(scales), quats=pad(rotations, identity),
        colors=pad(linear_from_sh_dc(sh[:, :, 0]), 0.0), opacities=pad(opacities),
        focal_px=DEFAULT_FOCAL_PX if focal_px is None else focal_px,
        image_size=DEFAULT_IMAGE_SIZE if image_size is None else image_size,
        depth=depth, sh_rest=rest,
    )


def _real_lengths(opacities: torch.Tensor, scales: torch.Tensor) -> list[int]:
    """Per scene, N minus the run of invisible padding splats (opacity 0, all scales 0) at its end."""
    invisible = (opacities == 0) & (scales == 0).all(dim=-1)  # (B, N)
    trailing = invisible.flip(1).to(torch.int64).cumprod(dim=1).sum(dim=1)
    return [opacities.shape[1] - int(t) for t in trailing.tolist()]
