"""Edits of a Gaussian scene for export: crop, drop faint splats, decimate, move into a viewer's frame.

Every function takes a `Gaussians` batch and returns a new one; nothing is changed in place. A
selection may keep a different number of splats in each scene of a batch; a batch needs the same
count in every scene, so such a selection raises and asks for one scene at a time (or `decimate`,
which keeps exactly `max_splats` everywhere).

Frames: SHARP's scenes use OpenCV camera axes (x right, y down, z forward, metres). Most 3DGS
viewers expect y up; `OPENCV_TO_Y_UP` (a half turn about x) maps one onto the other.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import torch

from .gaussians import Gaussians
from .linalg import quats_from_rotations, rotate_sh_rest

__all__ = [
    "OPENCV_TO_Y_UP",
    "crop",
    "drop_transparent",
    "visibility_scores",
    "decimate",
    "select_per_scene",
    "rotation_from_euler_deg",
    "quat_multiply",
    "transform",
    "half_turn",
    "recenter",
    "stack_scenes",
]

# A half turn about x: (x, y, z) -> (x, -y, -z). Turns OpenCV's y-down / z-forward into y-up / z-back.
OPENCV_TO_Y_UP = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


# -- selection -------------------------------------------------------------------------------------
def select_per_scene(g: Gaussians, keep: torch.Tensor) -> Gaussians:
    """Keep the splats where `keep` (B, N) bool is true, in their original order.

    Raises ValueError when scenes would keep different counts or nothing at all, since a batch
    holds the same number of splats per scene.
    """
    if keep.shape != (g.batch_size, g.num_gaussians):
        raise ValueError(f"keep mask has shape {tuple(keep.shape)}, expected {(g.batch_size, g.num_gaussians)}")
    counts = keep.sum(dim=1)
    if bool((counts == 0).any()):
        raise ValueError("No splats are left after this edit: widen the crop or lower the opacity threshold.")
    if bool((counts != counts[0]).any()):
        raise ValueError(
            f"The scenes of this batch keep different numbers of splats ({counts.tolist()}); "
            "edit one scene at a time, or also set a splat budget so every scene keeps the same count."
        )
    index = keep.nonzero()[:, 1].reshape(g.batch_size, int(counts[0]))  # row-major: grouped by scene
    return _gather(g, index)


def _gather(g: Gaussians, index: torch.Tensor) -> Gaussians:
    """Pick splats by per-scene indices (B, K) along N."""
    index = index.to(g.device)

    def take(t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 2:
            return torch.gather(t, 1, index)
        return torch.gather(t, 1, index.unsqueeze(-1).expand(-1, -1, t.shape[-1]))

    sh_rest = None
    if g.sh_rest is not None:  # (B, N, K, 3): gather whole (K, 3) blocks per splat
        flat = g.sh_rest.flatten(2)
        sh_rest = take(flat).unflatten(2, g.sh_rest.shape[2:])
    return replace(
        g, means=take(g.means), scales=take(g.scales), quats=take(g.quats),
        colors=take(g.colors), opacities=take(g.opacities), sh_rest=sh_rest,
    )


def crop(
    g: Gaussians,
    *,
    depth_range: tuple[float | None, float | None] | None = None,
    box_min: Sequence[float] | None = None,
    box_max: Sequence[float] | None = None,
) -> Gaussians:
    """Keep splats whose centre lies in a depth range (z, metres) and/or an axis-aligned box (metres).

    `None` on either end of the depth range, or for either box corner, means no limit there.
    """
    keep = torch.ones(g.means.shape[:2], dtype=torch.bool, device=g.device)
    if depth_range is not None:
        near, far = depth_range
        if near is not None and far is not None and far <= near:
            raise ValueError(f"Depth range is empty: far ({far} m) must be greater than near ({near} m).")
        z = g.means[..., 2]
        if near is not None:
            keep &= z >= near
        if far is not None:
            keep &= z <= far
    if box_min is not None:
        keep &= (g.means >= _vector(box_min, g)).all(dim=-1)
    if box_max is not None:
        keep &= (g.means <= _vector(box_max, g)).all(dim=-1)
    if box_min is not None and box_max is not None and bool((_vector(box_max, g) <= _vector(box_min, g)).any()):
        raise ValueError(f"Crop box is empty: every max ({list(box_max)}) must exceed its min ({list(box_min)}).")
    return select_per_scene(g, keep)


def drop_transparent(g: Gaussians, min_opacity: float) -> Gaussians:
    """Drop splats with opacity below `min_opacity` (0..1): they cost draw time and add little."""
    if min_opacity <= 0:
        return g
    return select_per_scene(g, g.opacities >= min_opacity)


def visibility_scores(g: Gaussians, near_m: float = 0.01, blur_px2: float = 0.3) -> torch.Tensor:
    """(B, N) opacity x area in pixels^2 that each splat covers in its scene's source view.

    The area is sqrt(det) of the splat's covariance projected to the image (first-order, as the
    rasterizers do) plus the rasterizers' `blur_px2` low-pass. Splats closer than `near_m` or behind
    the camera (scenes from other tools, or moved by `transform`) count as seen face-on from their
    distance to the origin.
    """
    g32 = g.to(dtype=torch.float32)
    focal = torch.tensor(g32.focal_px, device=g.device).view(-1, 1)  # (B, 1) pixels
    x, y, z = g32.means.unbind(-1)
    zc = z.clamp_min(near_m)
    zeros = torch.zeros_like(zc)
    jacobian = torch.stack(  # (B, N, 2, 3): d(pixel) / d(point)
        (torch.stack((focal / zc, zeros, -focal * x / zc**2), -1),
         torch.stack((zeros, focal / zc, -focal * y / zc**2), -1)),
        dim=-2,
    )
    cov2d = jacobian @ g32.covariances() @ jacobian.transpose(-1, -2)
    a, b, c = cov2d[..., 0, 0] + blur_px2, cov2d[..., 0, 1], cov2d[..., 1, 1] + blur_px2
    area_in_front = (a * c - b * b).clamp_min(0).sqrt()
    two_largest = g32.scales.sort(dim=-1, descending=True).values[..., :2].prod(dim=-1)
    distance = g32.means.norm(dim=-1).clamp_min(near_m)
    area_face_on = focal**2 * two_largest / distance**2 + blur_px2
    return g32.opacities * torch.where(z > near_m, area_in_front, area_face_on)


def decimate(g: Gaussians, max_splats: int) -> Gaussians:
    """Keep the `max_splats` most visible splats of each scene (see `visibility_scores`), in order.

    For viewers (VR headsets, browsers) that cannot take SHARP's ~1.2 M splats. A budget at or
    above the current count returns the scene unchanged.
    """
    if max_splats <= 0:
        raise ValueError(f"max_splats must be positive, got {max_splats}.")
    if max_splats >= g.num_gaussians:
        return g
    top = visibility_scores(g).topk(max_splats, dim=1).indices
    return _gather(g, top.sort(dim=1).values)


# -- rigid / similarity transforms -------------------------------------------------------------
def rotation_from_euler_deg(x_deg: float = 0.0, y_deg: float = 0.0, z_deg: float = 0.0) -> torch.Tensor:
    """(3, 3) rotation turning first about x, then y, then z (fixed axes, degrees): Rz @ Ry @ Rx."""
    ax, ay, az = (math.radians(a) for a in (x_deg, y_deg, z_deg))
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    ry = torch.tensor([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rz = torch.tensor([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a * b of (..., 4) quaternions (w, x, y, z): rotate by b, then by a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def transform(
    g: Gaussians,
    *,
    rotation: torch.Tensor | None = None,
    translation: Sequence[float] | torch.Tensor | None = None,
    scale: float = 1.0,
) -> Gaussians:
    """Similarity transform p -> scale * R p + t applied to centres, orientations and sizes.

    rotation: (3, 3) proper rotation; translation: (3,) or per scene (B, 3) metres; scale: > 0.
    Covariances follow as R S Sigma S R^T, so splats keep their look from a moved camera; the
    view-dependent colour (`sh_rest`, degrees 1-3) turns with R too, so a splat seen along R d
    shows what it showed along d (see `linalg.rotate_sh_rest`).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}.")
    means, quats, sh_rest = g.means, g.quats, g.sh_rest
    if rotation is not None:
        r = rotation.to(device=g.device, dtype=torch.float32)  # checked before any cast to a half dtype
        if not torch.allclose(r @ r.T, torch.eye(3, device=r.device, dtype=r.dtype), atol=1e-4) or float(torch.det(r)) < 0:
            raise ValueError("rotation must be a proper 3x3 rotation matrix (orthonormal, determinant +1).")
        means = means @ r.to(g.dtype).T
        quats = quat_multiply(quats_from_rotations(r).to(quats.dtype).expand_as(quats), quats)
        if sh_rest is not None:
            sh_rest = rotate_sh_rest(sh_rest, rotation)
    means = means * scale
    if translation is not None:
        t = _vector(translation, g)
        means = means + (t if t.dim() == 1 else t.unsqueeze(1))
    return replace(g, means=means, quats=quats, scales=g.scales * scale, sh_rest=sh_rest)


# Which of x, y, z each SH function beyond DC is odd in (3DGS order: degree 1: y, z, x; degree 2:
# xy, yz, 2z^2-x^2-y^2, xz, x^2-y^2; degree 3: y(3x^2-y^2), xyz, y(4z^2-..), z(2z^2-..), x(4z^2-..),
# z(x^2-y^2), x(x^2-3y^2)); flipping axes multiplies each coefficient by the product of the flips.
_SH_ODD_AXES = torch.tensor([
    (0, 1, 0), (0, 0, 1), (1, 0, 0),
    (1, 1, 0), (0, 1, 1), (0, 0, 0), (1, 0, 1), (0, 0, 0),
    (0, 1, 0), (1, 1, 1), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 0, 1), (1, 0, 0),
], dtype=torch.bool)


def axis_flip_sh_signs(signs) -> torch.Tensor:
    """(15,) float32 factors, one per SH coefficient beyond DC (degrees 1-3, 3DGS order), for the
    axis flips `signs` (3 entries of +-1): each coefficient gets the product of the flips of its odd
    axes. A half turn is two such flips; file frames (RUB vs RDF) differ by one."""
    signs = torch.as_tensor(signs, dtype=torch.float32).reshape(3)
    return torch.where(_SH_ODD_AXES, signs[None, :], torch.ones(())).prod(dim=1)


def half_turn(g: Gaussians, rotation: torch.Tensor) -> Gaussians:
    """`transform` by a half turn about x, y or z given as a diagonal (3, 3) rotation (two entries
    -1, e.g. `OPENCV_TO_Y_UP`), with the SH bands beyond DC turned too (exactly: each coefficient
    keeps or flips its sign). Frame changes between file conventions are such turns."""
    signs = torch.diagonal(rotation)
    if not torch.equal(rotation, torch.diag(signs)) or not bool((signs.abs() == 1).all()) or float(signs.prod()) != 1:
        raise ValueError("half_turn takes a diagonal rotation with entries +-1 and two of them -1.")
    # `transform` would turn the SH too, through fitted rotation matrices (exact to ~1e-15); a half
    # turn only flips signs, so do that exactly instead and let `transform` move the rest.
    turned = transform(replace(g, sh_rest=None), rotation=rotation)
    if g.sh_rest is None:
        return turned
    factor = axis_flip_sh_signs(signs)[: g.sh_rest.shape[2]]
    return replace(turned, sh_rest=g.sh_rest * factor.to(g.sh_rest)[None, None, :, None])


def recenter(g: Gaussians, mode: str = "median") -> Gaussians:
    """Move each scene so its splats' centre ("median" per axis, robust to far outliers, or "mean")
    lands on the origin, where viewers orbit."""
    if mode == "median":
        centre = g.means.median(dim=1).values
    elif mode == "mean":
        centre = g.means.mean(dim=1)
    else:
        raise ValueError(f"Unknown recenter mode {mode!r}: use 'median' or 'mean'.")
    return transform(g, translation=-centre)


# -- batching -------------------------------------------------------------------------------------
def stack_scenes(scenes: Sequence[Gaussians]) -> Gaussians:
    """Concatenate scenes (each a batch) along B; they must have the same splat count.

    Depth maps are kept when every scene has one of the same size, and dropped otherwise.
    """
    if not scenes:
        raise ValueError("stack_scenes needs at least one scene.")
    counts = {s.num_gaussians for s in scenes}
    if len(counts) != 1:
        raise ValueError(f"Cannot batch scenes with different splat counts {sorted(counts)}.")
    if len(scenes) == 1:
        return scenes[0]
    degrees = {s.sh_degree for s in scenes}
    if len(degrees) != 1:
        raise ValueError(f"Cannot batch scenes with different spherical-harmonic degrees {sorted(degrees)}.")
    depths = [s.depth for s in scenes]
    keep_depth = all(d is not None for d in depths) and len({tuple(d.shape[1:]) for d in depths}) == 1
    return Gaussians(
        means=torch.cat([s.means for s in scenes]),
        scales=torch.cat([s.scales for s in scenes]),
        quats=torch.cat([s.quats for s in scenes]),
        colors=torch.cat([s.colors for s in scenes]),
        opacities=torch.cat([s.opacities for s in scenes]),
        focal_px=[f for s in scenes for f in s.focal_px],
        image_size=[wh for s in scenes for wh in s.image_size],
        depth=torch.cat(depths) if keep_depth else None,
        sh_rest=None if scenes[0].sh_rest is None else torch.cat([s.sh_rest for s in scenes]),
    )


def _vector(value: Sequence[float] | torch.Tensor, g: Gaussians) -> torch.Tensor:
    return torch.as_tensor(value, dtype=g.dtype).to(g.device)
