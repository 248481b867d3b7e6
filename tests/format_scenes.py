"""Small Gaussian scenes for the file-format tests: SHARP-like (an image grid unprojected to two depth
layers) with the edge values every format must survive (opacity 0 and 1, zero scale)."""

from __future__ import annotations

import torch

from sharp_core.gaussians import Gaussians


def sharp_like_scene(width: int = 48, height: int = 32, layers: int = 2, seed: int = 0,
                     edge_values: bool = True) -> Gaussians:
    """width * height * layers splats in the OpenCV camera frame (metres, z forward), reference order."""
    g = torch.Generator().manual_seed(seed)
    focal = 0.9 * width
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    means, scales = [], []
    for layer in range(layers):
        depth = 2.0 + layer + 0.8 * torch.sin(u / 7.0) * torch.cos(v / 5.0) + 0.05 * torch.randn(height, width, generator=g)
        x = (u - width / 2) / focal * depth
        y = (v - height / 2) / focal * depth
        means.append(torch.stack([x, y, depth], dim=-1).reshape(-1, 3))
        pixel = (depth / focal).reshape(-1, 1)
        scales.append(pixel * torch.exp(0.4 * torch.randn(height * width, 3, generator=g)))
    means, scales = torch.cat(means), torch.cat(scales)
    n = len(means)
    quats = torch.randn(n, 4, generator=g)
    quats = quats / quats.norm(dim=-1, keepdim=True)
    colors = torch.rand(n, 3, generator=g) ** 2.2
    opacities = torch.rand(n, generator=g)
    if edge_values:
        opacities[:4] = torch.tensor([0.0, 1.0, 0.0, 1.0])
        scales[4] = 0.0
        colors[5] = torch.tensor([0.0, 1.0, 0.5])
    return Gaussians(
        means=means, scales=scales, quats=quats, colors=colors, opacities=opacities,
        focal_px=[focal], image_size=[(width, height)],
    )


def quat_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) largest component difference between unit quaternions a and b, up to sign (q ~ -q)."""
    same = (a - b).abs().amax(dim=-1)
    flipped = (a + b).abs().amax(dim=-1)
    return torch.minimum(same, flipped)


def rotation_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) angle in radians of the rotation taking unit quaternion b to a (q and -q are the same)."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    b = b * torch.where((a * b).sum(dim=-1, keepdim=True) < 0, -1.0, 1.0)
    return 4.0 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))  # stable near 0, unlike acos


def with_sh(scene: Gaussians, k: int = 15, seed: int = 0, spread: float = 0.3) -> Gaussians:
    """`scene` with random SH bands (N, k, 3) inside [-1, 1) (SPZ's range), as a trained 3DGS file has."""
    g = torch.Generator().manual_seed(seed)
    rest = (torch.rand(scene.batch_size, scene.num_gaussians, k, 3, generator=g) * 2 - 1) * spread
    from dataclasses import replace
    return replace(scene, sh_rest=rest)


def assert_ply_holds(path, ours, *, opacity_atol: float, what: str) -> None:
    """The 3DGS PLY at `path` (a third-party tool's decoding of one of our files) holds the splats of
    `ours` (our decoding of the same file) splat by splat, in the same order, to float32 precision.
    `opacity_atol`: how far the tool's clamped logit may move opacities 0 and 1."""
    import numpy as np
    from plyfile import PlyData

    from sharp_core.color import SH_C0, linear_to_srgb

    v = PlyData.read(str(path))["vertex"].data
    assert len(v) == ours.num_gaussians, f"{what}: {len(v)} splats, ours {ours.num_gaussians}"

    def col(*names):
        return torch.from_numpy(np.stack([v[n] for n in names], axis=1).astype(np.float64))

    o = ours.to(dtype=torch.float64)
    torch.testing.assert_close(col("x", "y", "z"), o.means[0], atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(col("scale_0", "scale_1", "scale_2").exp(), o.scales[0], atol=1e-9, rtol=1e-5)
    torch.testing.assert_close(col("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5, linear_to_srgb(o.colors[0]),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.sigmoid(col("opacity")[:, 0]), o.opacities[0], atol=opacity_atol, rtol=0)
    assert (quat_error(col("rot_0", "rot_1", "rot_2", "rot_3"), o.quats[0]) < 1e-5).all(), f"{what}: rotations differ"
