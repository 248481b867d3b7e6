"""Edits used by the Edit Gaussians node: selection, decimation and similarity transforms."""

from __future__ import annotations

import math

import pytest
import torch

from sharp_core.edit import (
    OPENCV_TO_Y_UP,
    crop,
    decimate,
    drop_transparent,
    quat_multiply,
    recenter,
    rotation_from_euler_deg,
    select_per_scene,
    stack_scenes,
    transform,
    visibility_scores,
)
from sharp_core.gaussians import Gaussians
from sharp_core.linalg import quats_from_rotations as quat_from_rotation, rotations_from_quats


def random_scene(b: int = 1, n: int = 500, seed: int = 0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    means = torch.rand(b, n, 3, generator=gen) * torch.tensor([4.0, 3.0, 9.0]) - torch.tensor([2.0, 1.5, -1.0])
    quats = torch.randn(b, n, 4, generator=gen)
    return Gaussians(
        means=means,
        scales=torch.rand(b, n, 3, generator=gen) * 0.05 + 0.001,
        quats=quats / quats.norm(dim=-1, keepdim=True),
        colors=torch.rand(b, n, 3, generator=gen),
        opacities=torch.rand(b, n, generator=gen),
        focal_px=[500.0] * b,
        image_size=[(320, 240)] * b,
        depth=torch.rand(b, 24, 32, generator=gen) + 1,
    )


def test_crop_by_depth_keeps_exactly_the_range_in_order():
    g = random_scene()
    out = crop(g, depth_range=(3.0, 6.0))
    z = g.means[0, :, 2]
    expected = g.means[0, (z >= 3.0) & (z <= 6.0)]
    assert torch.equal(out.means[0], expected)
    assert out.opacities.shape == (1, expected.shape[0])
    assert out.depth is g.depth and out.focal_px == g.focal_px


def test_crop_by_box_and_open_ends():
    g = random_scene()
    out = crop(g, box_min=(-1.0, -0.5, -1e9), box_max=(1.0, 0.5, 1e9))
    m = g.means[0]
    inside = (m[:, 0] >= -1) & (m[:, 0] <= 1) & (m[:, 1] >= -0.5) & (m[:, 1] <= 0.5)
    assert torch.equal(out.means[0], m[inside])
    assert crop(g, depth_range=(None, None)).num_gaussians == g.num_gaussians


def test_crop_errors_are_clear():
    g = random_scene()
    with pytest.raises(ValueError, match="No splats are left"):
        crop(g, depth_range=(100.0, 200.0))
    with pytest.raises(ValueError, match="Depth range is empty"):
        crop(g, depth_range=(5.0, 2.0))
    with pytest.raises(ValueError, match="Crop box is empty"):
        crop(g, box_min=(0, 0, 0), box_max=(1, -1, 1))


def test_batch_selection_needs_equal_counts():
    g = random_scene(b=2)
    with pytest.raises(ValueError, match="different numbers of splats"):
        drop_transparent(g, 0.5)
    keep = torch.zeros(2, g.num_gaussians, dtype=torch.bool)
    keep[0, [1, 5, 9]] = True
    keep[1, [0, 2, 3]] = True
    out = select_per_scene(g, keep)
    assert torch.equal(out.means[0], g.means[0, [1, 5, 9]])
    assert torch.equal(out.means[1], g.means[1, [0, 2, 3]])
    assert torch.equal(out.colors[1], g.colors[1, [0, 2, 3]])


def test_drop_transparent_threshold():
    g = random_scene()
    out = drop_transparent(g, 0.3)
    assert bool((out.opacities >= 0.3).all())
    assert out.num_gaussians == int((g.opacities >= 0.3).sum())
    assert drop_transparent(g, 0.0) is g


def test_decimate_keeps_the_most_visible_in_original_order():
    g = random_scene(b=2)
    out = decimate(g, 50)
    assert out.num_gaussians == 50
    scores = visibility_scores(g)
    for b in range(2):
        kept = scores[b].topk(50).indices.sort().values
        assert torch.equal(out.means[b], g.means[b, kept])
        # every dropped splat scores no higher than the weakest kept one
        dropped = torch.ones(g.num_gaussians, dtype=torch.bool)
        dropped[kept] = False
        assert scores[b, dropped].max() <= scores[b, kept].min()
    assert decimate(g, 10_000) is g
    with pytest.raises(ValueError, match="positive"):
        decimate(g, 0)


def test_visibility_prefers_near_large_opaque_splats():
    g = random_scene(n=4)
    g.means[:] = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 10.0], [0.0, 0.0, 1.0], [0.0, 0.0, -2.0]])
    g.scales[:] = 0.01
    g.quats[:] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    g.opacities[:] = torch.tensor([1.0, 1.0, 0.1, 1.0])
    s = visibility_scores(g, blur_px2=0.0)[0]
    assert s[0] > s[1] and s[0] > s[2]
    # an isotropic splat of std 1 cm at 1 m seen by f = 500 px: a 5 px std disc, sqrt(det) = 25 px^2
    assert s[0] == pytest.approx(25.0, rel=1e-4)
    assert s[1] == pytest.approx(0.25, rel=1e-4)
    # behind the camera: face-on from its distance (2 m): 500^2 * 0.01^2 / 2^2
    assert s[3] == pytest.approx(6.25, rel=1e-4)


def test_visibility_sees_thin_splats_edge_on_as_small():
    g = random_scene(n=2)
    g.means[:] = torch.tensor([0.0, 0.0, 2.0])
    g.opacities[:] = 1.0
    g.quats[:] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    g.scales[0, 0] = torch.tensor([0.1, 0.1, 0.001])  # a disc facing the camera
    g.scales[0, 1] = torch.tensor([0.001, 0.1, 0.1])  # the same disc seen edge-on
    s = visibility_scores(g)[0]
    assert s[0] > 20 * s[1]


def test_euler_rotation_and_quaternion_round_trip():
    r = rotation_from_euler_deg(30, -50, 120)
    assert torch.allclose(r @ r.T, torch.eye(3), atol=1e-6)
    assert torch.det(r) == pytest.approx(1.0, abs=1e-6)
    q = quat_from_rotation(r)
    assert torch.allclose(rotations_from_quats(q), r, atol=1e-6)
    # half turns (trace -1) are where naive conversions fail
    assert torch.allclose(rotations_from_quats(quat_from_rotation(OPENCV_TO_Y_UP)), OPENCV_TO_Y_UP, atol=1e-6)
    rz = rotation_from_euler_deg(z_deg=90)
    assert torch.allclose(rz @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


def test_quat_multiply_composes_rotations():
    a, b = rotation_from_euler_deg(10, 20, 30), rotation_from_euler_deg(-40, 5, 60)
    q = quat_multiply(quat_from_rotation(a), quat_from_rotation(b))
    assert torch.allclose(rotations_from_quats(q), a @ b, atol=1e-6)


def test_transform_moves_covariances_with_the_scene():
    g = random_scene(n=100)
    r = rotation_from_euler_deg(15, 70, -20)
    out = transform(g, rotation=r, translation=(1.0, 2.0, 3.0), scale=2.0)
    assert torch.allclose(out.means, 2.0 * g.means @ r.T + torch.tensor([1.0, 2.0, 3.0]), atol=1e-5)
    expected_cov = 4.0 * r @ g.covariances() @ r.T
    assert torch.allclose(out.covariances(), expected_cov, atol=1e-6)
    assert torch.equal(out.colors, g.colors) and torch.equal(out.opacities, g.opacities)


def test_opencv_to_y_up_turns_the_scene_upright():
    g = random_scene(n=10)
    out = transform(g, rotation=OPENCV_TO_Y_UP)
    assert torch.allclose(out.means, g.means * torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(out.covariances(), OPENCV_TO_Y_UP @ g.covariances() @ OPENCV_TO_Y_UP.T, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_transform_accepts_half_precision_scenes(dtype):
    """A valid rotation is checked before the cast to the scene's dtype, where rounding alone
    would fail the orthonormality test."""
    g = random_scene(n=50)
    r = rotation_from_euler_deg(10, 20, 30)
    out = transform(g.to(dtype=dtype), rotation=r)
    assert out.dtype == dtype
    assert torch.allclose(out.means.float(), g.means @ r.T, atol=0.1)
    assert torch.allclose(out.covariances().float(), r @ g.covariances() @ r.T, atol=1e-3)


def test_transform_rejects_bad_parameters():
    g = random_scene(n=10)
    with pytest.raises(ValueError, match="proper 3x3 rotation"):
        transform(g, rotation=torch.diag(torch.tensor([1.0, 1.0, -1.0])))
    with pytest.raises(ValueError, match="scale must be positive"):
        transform(g, scale=0.0)


def test_recenter_puts_the_median_at_the_origin_per_scene():
    g = random_scene(b=2, n=101)
    out = recenter(g)
    assert torch.allclose(out.means.median(dim=1).values, torch.zeros(2, 3), atol=1e-6)
    out_mean = recenter(g, "mean")
    assert torch.allclose(out_mean.means.mean(dim=1), torch.zeros(2, 3), atol=1e-5)
    with pytest.raises(ValueError, match="median"):
        recenter(g, "centroid")


def test_stack_scenes():
    a, b = random_scene(seed=1), random_scene(seed=2)
    s = stack_scenes([a, b])
    assert s.batch_size == 2 and torch.equal(s.means[1], b.means[0]) and s.depth.shape == (2, 24, 32)
    with pytest.raises(ValueError, match="different splat counts"):
        stack_scenes([a, random_scene(n=10)])
    assert math.isclose(s.focal_px[1], 500.0)
