"""Stereo: the eyes' geometry (zero disparity at the convergence distance, the pinhole disparity
f b (1/z - 1/z_c) elsewhere), checked on projections and on rendered splats, and every frame packing."""

from __future__ import annotations

import pytest
import torch

from sharp_core import (
    STEREO_MODES, Camera, Gaussians, anaglyph_red_cyan, look_at, pack_stereo, render, render_stereo, squeeze_camera,
    stereo_eye_size, stereo_pair,
)

F, W, H = 80.0, 96, 64


def camera(world_to_camera=None) -> Camera:
    k = torch.tensor([[F, 0.0, W / 2], [0.0, F, H / 2], [0.0, 0.0, 1.0]])
    return Camera(intrinsics=k, world_to_camera=torch.eye(4) if world_to_camera is None else world_to_camera)


def project(cam: Camera, point) -> torch.Tensor:
    p = cam.world_to_camera.double() @ torch.tensor([*point, 1.0], dtype=torch.float64)
    q = cam.intrinsics.double() @ p[:3]
    return q[:2] / q[2]


def splats(points, size=0.04) -> Gaussians:
    means = torch.tensor(points, dtype=torch.float32)
    n = means.shape[0]
    return Gaussians(means=means, scales=torch.full((n, 3), size), quats=torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4),
                     colors=torch.ones(n, 3), opacities=torch.full((n,), 0.9), focal_px=[F], image_size=[(W, H)])


def centroid_x(alpha: torch.Tensor) -> float:
    """Alpha-weighted centre (pixel coordinates, centres at j + 0.5) of one blob."""
    xs = torch.arange(alpha.shape[-1], dtype=torch.float64) + 0.5
    return float((alpha.double().sum(0) * xs).sum() / alpha.double().sum())


POSES = {
    "source": torch.eye(4),
    "moved": look_at((0.3, -0.2, 0.5), (0.0, 0.0, 4.0)),
}


@pytest.mark.parametrize("pose", POSES, ids=str)
def test_projection_disparity_follows_the_pinhole_model(pose):
    base = camera(POSES[pose])
    b, zc = 0.063, 3.0
    left, right = stereo_pair(base, b, zc)
    to_world = base.camera_to_world.double()
    for z, x in ((zc, 0.0), (zc, 0.4), (1.5, -0.2), (8.0, 0.3)):  # points given in the base camera's frame
        world = (to_world @ torch.tensor([x, 0.1, z, 1.0], dtype=torch.float64))[:3].tolist()
        (ul, vl), (ur, vr) = project(left, world), project(right, world)
        assert float(ul - ur) == pytest.approx(F * b * (1 / z - 1 / zc), abs=1e-4)
        assert float(vl) == pytest.approx(float(vr), abs=1e-5)  # parallel axes: no vertical disparity
    # the eyes sit at -+ b/2 along the camera's x axis, with its orientation
    axis = to_world[:3, 0]
    assert torch.allclose(left.position.double(), base.position.double() - axis * b / 2, atol=1e-5)
    assert torch.allclose(right.position.double(), base.position.double() + axis * b / 2, atol=1e-5)
    assert torch.allclose(left.world_to_camera[:3, :3], base.world_to_camera[:3, :3])


def test_rendered_splats_land_where_the_geometry_says():
    zc, b = 2.5, 0.063
    near = 1.2
    left, right = stereo_pair(camera(), b, zc)
    for z in (zc, near):
        scene = splats([[0.0, 0.0, z]])
        xl = centroid_x(render(scene, left, W, H).alpha)
        xr = centroid_x(render(scene, right, W, H).alpha)
        assert xl - xr == pytest.approx(F * b * (1 / z - 1 / zc), abs=0.02)
    # at the convergence distance both eyes draw the splat exactly where the mono camera does
    mono = centroid_x(render(splats([[0.0, 0.0, zc]]), camera(), W, H).alpha)
    assert centroid_x(render(splats([[0.0, 0.0, zc]]), left, W, H).alpha) == pytest.approx(mono, abs=0.02)
    # a zero interaxial is the mono camera
    l0, r0 = stereo_pair(camera(), 0.0, zc)
    assert torch.equal(l0.intrinsics, camera().intrinsics) and torch.equal(r0.world_to_camera, torch.eye(4))


def test_stereo_pair_refuses_bad_distances():
    for b, zc in ((-0.01, 2.0), (float("nan"), 2.0), (0.06, 0.0), (0.06, float("inf"))):
        with pytest.raises(ValueError, match="interaxial|convergence"):
            stereo_pair(camera(), b, zc)


def test_packings():
    left = torch.rand(2, 4, 6, 3)
    right = torch.rand(2, 4, 6, 3)
    sbs = pack_stereo(left, right, "side-by-side")
    assert sbs.shape == (2, 4, 12, 3) and torch.equal(sbs[:, :, :6], left) and torch.equal(sbs[:, :, 6:], right)
    half = pack_stereo(left, right, "side-by-side half width")
    assert torch.equal(half, sbs)  # the squeeze happens in the cameras, packing is the same
    tb = pack_stereo(left, right, "top-bottom")
    assert tb.shape == (2, 8, 6, 3) and torch.equal(tb[:, :4], left) and torch.equal(tb[:, 4:], right)
    masks = pack_stereo(left[..., 0], right[..., 0], "top-bottom")
    assert masks.shape == (2, 8, 6) and torch.equal(masks[:, 4:], right[..., 0])
    ana = pack_stereo(left, right, "anaglyph red-cyan")
    assert ana.shape == left.shape
    assert torch.equal(ana[..., 0], left[..., 0]) and torch.equal(ana[..., 1:], right[..., 1:])
    with pytest.raises(ValueError, match="choose one of"):
        pack_stereo(left, right, "checkerboard")
    with pytest.raises(ValueError, match="differ in shape"):
        pack_stereo(left, right[:, :3], "top-bottom")
    with pytest.raises(ValueError, match="RGB"):
        anaglyph_red_cyan(left[..., 0], right[..., 0])


def test_anaglyph_of_a_white_splat_is_red_left_cyan_right():
    zc, b = 2.0, 0.3  # a wide base so the near splat's two images separate
    scene = splats([[0.0, 0.0, 1.0]], size=0.015)
    out = render_stereo(scene, camera(), W, H, "anaglyph red-cyan", b, zc)
    shift = F * b * (1 / 1.0 - 1 / zc)  # left image to the right of the right image by this many px
    row = out.color[H // 2]
    x_left, x_right = int(W / 2 + shift / 2), int(W / 2 - shift / 2)
    assert float(row[x_left, 0]) > 0.5 and float(row[x_left, 1:].max()) < 0.05  # red only: the left eye's copy
    assert float(row[x_right, 0]) < 0.05 and float(row[x_right, 1:].min()) > 0.5  # cyan only: the right eye's


@pytest.mark.parametrize("mode", [m for m in STEREO_MODES if m != "off"])
def test_render_stereo_layouts(mode):
    zc, b = 2.0, 0.063
    scene = splats([[0.0, 0.0, zc], [0.3, 0.1, 1.0]])
    out = render_stereo(scene, camera(), W, H, mode, b, zc)
    shapes = {"side-by-side": (H, 2 * W), "side-by-side half width": (H, W), "top-bottom": (2 * H, W),
              "anaglyph red-cyan": (H, W)}[mode]
    assert out.color.shape == (*shapes, 3) and out.alpha.shape == shapes and out.depth.shape == shapes
    left, right = stereo_pair(camera(), b, zc)
    if mode == "side-by-side half width":
        left, right = squeeze_camera(left, 0.5), squeeze_camera(right, 0.5)
    eye_w, eye_h = stereo_eye_size(mode, W, H)
    ref_l, ref_r = (render(scene, c, eye_w, eye_h) for c in (left, right))
    if mode == "top-bottom":
        assert torch.equal(out.color[:H], ref_l.color) and torch.equal(out.color[H:], ref_r.color)
    elif mode.startswith("side-by-side"):
        assert torch.equal(out.color[:, :eye_w], ref_l.color) and torch.equal(out.alpha[:, eye_w:], ref_r.alpha)
    else:
        assert torch.equal(out.alpha, ref_l.alpha)
    if mode == "side-by-side half width":  # half the horizontal position, same vertical one
        x_half = centroid_x(out.alpha[:, :eye_w] * (out.depth[:, :eye_w] > 1.5))
        x_full = centroid_x(render(scene, stereo_pair(camera(), b, zc)[0], W, H).alpha * 1.0)
        assert x_half == pytest.approx(W / 4, abs=0.05)  # the convergence splat: centre of the left half
        assert x_full > W / 2  # the near splat pulls the full-width centroid right


def test_half_width_needs_an_even_width():
    assert stereo_eye_size("side-by-side half width", 96, 64) == (48, 64)
    assert stereo_eye_size("top-bottom", 96, 64) == (96, 64)
    with pytest.raises(ValueError, match="even width"):
        stereo_eye_size("side-by-side half width", 95, 64)
