"""View-dependent colour (SH degrees 1-3) under edits: a rotated scene seen along R d shows what the
original showed along d, for every degree, for arbitrary rotations and for the y-up conversion; crops
and decimation keep each splat's coefficients with it."""

from __future__ import annotations

import pytest
import torch

from sharp_core import OPENCV_TO_Y_UP, decimate, rotation_from_euler_deg, transform
from sharp_core.edit import crop
from sharp_core.gaussians import Gaussians
from sharp_core.linalg import rotate_sh_rest, rotations_from_quats, sh_basis, sh_rotation_matrices

DEGREES = {1: 3, 2: 8, 3: 15}


def _colour(sh_rest: torch.Tensor, directions: torch.Tensor, degree: int) -> torch.Tensor:
    """View-dependent part of the colour: sum_k sh_rest[..., k, :] Y_k(d), (..., 3)."""
    return (sh_rest * sh_basis(directions, degree).unsqueeze(-1)).sum(-2)


def _unit(n: int, seed: int) -> torch.Tensor:
    d = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return d / d.norm(dim=-1, keepdim=True)


def _rotations() -> dict[str, torch.Tensor]:
    q = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    out = {f"random{i}": r for i, r in enumerate(rotations_from_quats(q))}
    out["opencv_to_y_up"] = OPENCV_TO_Y_UP.double()
    out["quarter_turn_z"] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return out


@pytest.mark.parametrize("degree", sorted(DEGREES))
@pytest.mark.parametrize("name", sorted(_rotations()))
def test_rotated_sh_at_rotated_direction_equals_original(degree, name):
    r = _rotations()[name]
    k = DEGREES[degree]
    sh = torch.randn(50, k, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(degree))
    d = _unit(50, 1)  # one direction per splat
    rotated = rotate_sh_rest(sh, r)
    torch.testing.assert_close(_colour(rotated, d @ r.T, degree), _colour(sh, d, degree), atol=1e-12, rtol=0)
    # the check can fail: unrotated coefficients show another colour along R d (the identity excepted)
    assert (_colour(sh, d @ r.T, degree) - _colour(sh, d, degree)).abs().max() > 1e-2


def test_degree_one_band_is_the_rotation_in_the_3dgs_basis_order():
    # 3DGS's degree-1 basis is C1 * (-y, z, -x) = C1 * P d, so the band turns by P R P^T.
    p = torch.tensor([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    for r in _rotations().values():
        (d1,) = sh_rotation_matrices(r, 1)
        torch.testing.assert_close(d1, p @ r @ p.T, atol=1e-13, rtol=0)


def test_band_matrices_are_orthogonal_and_compose():
    rots = list(_rotations().values())
    a, b = rots[0], rots[1]
    for da, db, dab in zip(sh_rotation_matrices(a, 3), sh_rotation_matrices(b, 3), sh_rotation_matrices(a @ b, 3)):
        eye = torch.eye(da.shape[0], dtype=torch.float64)
        torch.testing.assert_close(da @ da.T, eye, atol=1e-13, rtol=0)
        torch.testing.assert_close(da @ db, dab, atol=1e-13, rtol=0)


def _scene(k: int, n: int = 64, dtype=torch.float32) -> Gaussians:
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, n, 4, generator=g)
    return Gaussians(
        means=torch.randn(1, n, 3, generator=g) + torch.tensor([0.0, 0.0, 4.0]),
        scales=torch.rand(1, n, 3, generator=g) * 0.05 + 1e-3, quats=q / q.norm(dim=-1, keepdim=True),
        colors=torch.rand(1, n, 3, generator=g), opacities=torch.rand(1, n, generator=g),
        focal_px=[500.0], image_size=[(64, 48)], sh_rest=torch.randn(1, n, k, 3, generator=g),
    ).to(dtype=dtype)


@pytest.mark.parametrize("degree", sorted(DEGREES))
def test_transform_turns_sh_with_the_scene_including_y_up(degree):
    scene = _scene(DEGREES[degree])
    d = _unit(scene.num_gaussians, 5).float()
    for rotation in (rotation_from_euler_deg(20, -35, 110), OPENCV_TO_Y_UP, rotation_from_euler_deg(0, 90, 0) @ OPENCV_TO_Y_UP):
        moved = transform(scene, rotation=rotation, scale=2.0, translation=(1.0, 2.0, 3.0))
        before = _colour(scene.sh_rest[0], d, degree)
        after = _colour(moved.sh_rest[0], d @ rotation.T, degree)
        torch.testing.assert_close(after, before, atol=2e-5, rtol=0)
    # no rotation, no change
    assert torch.equal(transform(scene, scale=3.0).sh_rest, scene.sh_rest)


def test_transform_keeps_half_precision_sh():
    scene = _scene(8).to(dtype=torch.float16)
    moved = transform(scene, rotation=OPENCV_TO_Y_UP)
    assert moved.sh_rest.dtype == torch.float16
    # a half turn about x maps (x, y, z) -> (x, -y, -z): the degree-1 coefficients (-y, z, -x order)
    # of y and z flip sign, the x one stays
    torch.testing.assert_close(moved.sh_rest[..., 0:3, :].float(),
                               scene.sh_rest[..., 0:3, :].float() * torch.tensor([-1.0, -1.0, 1.0]).view(3, 1))


def test_crop_and_decimate_keep_each_splats_coefficients():
    scene = _scene(15, n=200)
    for edited in (decimate(scene, 50), crop(scene, depth_range=(4.0, None))):
        assert edited.sh_rest.shape == (1, edited.num_gaussians, 15, 3)
        # find each kept splat in the original by its centre
        idx = torch.cdist(edited.means[0], scene.means[0]).argmin(dim=1)
        assert torch.equal(edited.means[0], scene.means[0, idx])
        assert torch.equal(edited.sh_rest[0], scene.sh_rest[0, idx])


def test_half_turn_and_transform_agree_on_sh():
    """half_turn flips SH signs exactly; transform turns them through the fitted matrices: same result."""
    from format_scenes import sharp_like_scene, with_sh
    from sharp_core.edit import OPENCV_TO_Y_UP, half_turn, transform

    scene = with_sh(sharp_like_scene(), k=15)
    exact, fitted = half_turn(scene, OPENCV_TO_Y_UP), transform(scene, rotation=OPENCV_TO_Y_UP)
    assert not torch.allclose(exact.sh_rest, scene.sh_rest)
    assert torch.allclose(exact.sh_rest, fitted.sh_rest, atol=1e-5)
    assert torch.allclose(exact.means, fitted.means) and torch.allclose(exact.quats, fitted.quats)
