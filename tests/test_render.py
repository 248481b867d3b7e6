"""Rendering: closed forms, compositing order, culling, and agreement with a dense reference."""

from __future__ import annotations

import math

import pytest
import torch

import sharp_core
from sharp_core import Camera, Gaussians, RenderResult, render
from sharp_core.color import linear_to_srgb, srgb_to_linear
from sharp_core.linalg import covariances_from_quats_scales
from sharp_core.rendering import native, render_many

COMPOSITORS = ["eager"] + (["native"] if native.available() else [])


def scene(means, scales, colors, opacities, quats=None, focal=50.0, size=(64, 48)) -> Gaussians:
    means = torch.as_tensor(means, dtype=torch.float32).reshape(-1, 3)
    n = means.shape[0]
    if quats is None:
        quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(n, 4)
    return Gaussians(
        means=means,
        scales=torch.as_tensor(scales, dtype=torch.float32).reshape(n, 3),
        quats=torch.as_tensor(quats, dtype=torch.float32).reshape(n, 4),
        colors=torch.as_tensor(colors, dtype=torch.float32).reshape(n, 3),
        opacities=torch.as_tensor(opacities, dtype=torch.float32).reshape(n),
        focal_px=[focal], image_size=[size],
    )


def pinhole(focal: float, cx: float, cy: float, world_to_camera=None) -> Camera:
    k = torch.tensor([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    return Camera(intrinsics=k, world_to_camera=torch.eye(4) if world_to_camera is None else world_to_camera)


# -- closed forms --------------------------------------------------------------------------------

@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_single_gaussian_matches_closed_form(compositor):
    # isotropic splat whose centre projects onto the centre of pixel (20, 30)
    focal, z, s = 40.0, 5.0, 0.4
    opacity, colour = 0.8, torch.tensor([0.9, 0.5, 0.2])
    g = scene([[0.0, 0.0, z]], [[s, s, s]], colour[None], [opacity])
    cam = pinhole(focal, 30.5, 20.5)
    out = render(g, cam, 64, 48, compositor=compositor)
    sigma_px = focal * s / z  # EWA: J Sigma J^T = (f/z)^2 s^2 I on the optical axis
    ii, jj = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    d2 = (jj + 0.5 - 30.5) ** 2 + (ii + 0.5 - 20.5) ** 2
    weight = opacity * torch.exp(-0.5 * d2 / sigma_px**2)
    reach = sigma_px * math.sqrt(2 * math.log(255 * opacity))
    inside = (weight >= 1 / 255) & (d2.sqrt() < reach - 0.05)
    expected = linear_to_srgb(weight[..., None] * colour)
    assert torch.allclose(out.color[20, 30], linear_to_srgb(opacity * colour), atol=1e-6)
    assert torch.allclose(out.color[inside], expected[inside], atol=2e-6)
    assert torch.allclose(out.alpha[inside], weight[inside], atol=1e-6)
    assert torch.allclose(out.depth[inside], torch.full_like(out.depth[inside], z), atol=1e-5)
    # outside the 1/255 contour nothing is drawn
    far = d2.sqrt() > reach + 0.05
    assert out.alpha[far].abs().max() == 0
    assert out.depth[far].abs().max() == 0


def test_antialiased_compensates_opacity_and_blurs():
    focal, z, s, opacity = 40.0, 5.0, 0.05, 0.9  # 0.4 px wide: a small, distant splat
    g = scene([[0.0, 0.0, z]], [[s, s, s]], [[1.0, 1.0, 1.0]], [opacity])
    cam = pinhole(focal, 30.5, 20.5)
    out = render(g, cam, 64, 48, antialiased=True)
    var = (focal * s / z) ** 2
    compensation = math.sqrt(var**2 / (var + 0.3) ** 2)
    assert out.alpha[20, 30].item() == pytest.approx(opacity * compensation, rel=1e-5)
    neighbour = opacity * compensation * math.exp(-0.5 / (var + 0.3))
    assert out.alpha[20, 31].item() == pytest.approx(neighbour, rel=1e-4)
    classic = render(g, cam, 64, 48)
    assert classic.alpha[20, 30].item() == pytest.approx(opacity, rel=1e-6)


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_two_gaussians_composite_front_to_back(compositor):
    front = ([0.0, 0.0, 3.0], [0.3] * 3, [1.0, 0.0, 0.0], 0.6)
    back = ([0.0, 0.0, 6.0], [0.6] * 3, [0.0, 0.0, 1.0], 0.7)
    cam = pinhole(40.0, 30.5, 20.5)
    results = []
    for order in ([front, back], [back, front]):  # input order must not matter
        g = scene(*(list(x) for x in zip(*order)))
        results.append(render(g, cam, 64, 48, compositor=compositor))
    torch.testing.assert_close(results[0].color, results[1].color, atol=0, rtol=0)
    centre = results[0]
    a1, a2 = 0.6, 0.7  # both centred on pixel (20, 30)
    linear = a1 * torch.tensor([1.0, 0.0, 0.0]) + (1 - a1) * a2 * torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(centre.color[20, 30], linear_to_srgb(linear), atol=1e-6)
    assert centre.alpha[20, 30].item() == pytest.approx(1 - (1 - a1) * (1 - a2), abs=1e-6)
    expected_depth = (a1 * 3.0 + (1 - a1) * a2 * 6.0) / (1 - (1 - a1) * (1 - a2))
    assert centre.depth[20, 30].item() == pytest.approx(expected_depth, abs=1e-5)


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_hidden_and_offscreen_gaussians_contribute_nothing(compositor):
    visible = ([0.2, -0.1, 4.0], [0.3, 0.2, 0.25], [0.3, 0.7, 0.2], 0.9)
    extras = [
        ([0.0, 0.0, -3.0], [1.0] * 3, [1.0, 1.0, 1.0], 1.0),  # behind the camera
        ([0.0, 0.0, 0.005], [0.001] * 3, [1.0, 1.0, 1.0], 1.0),  # in front of the near plane
        ([40.0, 0.0, 4.0], [0.3] * 3, [1.0, 1.0, 1.0], 1.0),  # far right of the image
        ([0.0, -30.0, 4.0], [0.3] * 3, [1.0, 1.0, 1.0], 1.0),  # far above the image
        ([0.0, 0.0, 5.0], [0.3] * 3, [1.0, 1.0, 1.0], 0.001),  # below the 1/255 opacity floor
    ]
    cam = pinhole(40.0, 32.0, 24.0)
    alone = render(scene(*(list(x) for x in zip(visible))), cam, 64, 48, compositor=compositor)
    crowd = render(scene(*(list(x) for x in zip(visible, *extras))), cam, 64, 48, compositor=compositor)
    assert alone.alpha.max() > 0.5
    torch.testing.assert_close(crowd.color, alone.color, atol=0, rtol=0)
    torch.testing.assert_close(crowd.depth, alone.depth, atol=0, rtol=0)


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_empty_scene_gives_background(compositor):
    background = (0.2, 0.5, 1.0)
    cam = pinhole(40.0, 32.0, 24.0)
    empty = scene(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0))
    behind = scene([[0.0, 0.0, -2.0]], [[0.5] * 3], [[1.0, 1.0, 1.0]], [1.0])
    for g in (empty, behind):
        out = render(g, cam, 64, 48, background=background, compositor=compositor)
        assert out.color.shape == (48, 64, 3)
        assert torch.allclose(out.color, torch.tensor(background).expand(48, 64, 3), atol=1e-6)
        assert out.alpha.abs().max() == 0 and out.depth.abs().max() == 0


def test_background_is_composited_in_linear_light():
    g = scene([[0.0, 0.0, 4.0]], [[2.0] * 3], [[0.0, 0.0, 0.0]], [0.5])  # a wide black splat
    out = render(g, pinhole(40.0, 32.0, 24.0), 64, 48, background=(1.0, 1.0, 1.0))
    a = out.alpha[24, 32]
    assert out.color[24, 32, 0].item() == pytest.approx(linear_to_srgb(1.0 - a).item(), abs=1e-6)


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_plane_of_gaussians_renders_its_depth(compositor):
    z = 7.5
    xs, ys = torch.meshgrid(torch.linspace(-9, 9, 100), torch.linspace(-7, 7, 80), indexing="xy")
    n = xs.numel()
    means = torch.stack([xs.flatten(), ys.flatten(), torch.full((n,), z)], -1)
    g = scene(means, torch.tensor([0.15, 0.15, 0.01]).expand(n, 3), torch.rand(n, 3), torch.full((n,), 0.9))
    out = render(g, pinhole(40.0, 32.0, 24.0), 64, 48, compositor=compositor)
    assert out.alpha.min() > 0.99
    assert torch.allclose(out.depth, torch.full_like(out.depth, z), atol=1e-4)


# -- dense reference ------------------------------------------------------------------------------

def dense_reference(g: Gaussians, cam: Camera, width: int, height: int, eps2d: float = 0.0):
    """Every splat against every pixel, composited one splat at a time in depth order.

    It restates gsplat's classic rules independently: clamped-Jacobian EWA projection, 3.33
    (or opacity-aware) sigma radius, 16-pixel tile boxes, alpha in [1/255, 0.999], stop before
    the transmittance falls to 1e-4. Also returns the pixels where a splat sits within float32
    rounding of the 1/255 or 1e-4 thresholds: float32 and float64 may decide those either way.
    """
    means, colors, opac = g.means[0].double(), g.colors[0].double(), g.opacities[0].double()
    k, w2c = cam.intrinsics.double(), cam.world_to_camera.double()
    p = means @ w2c[:3, :3].T + w2c[:3, 3]
    cov = w2c[:3, :3] @ covariances_from_quats_scales(g.quats[0].double(), g.scales[0].double()) @ w2c[:3, :3].T
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    x, y, z = p.unbind(-1)
    lim_x = ((width - cx) / fx + 0.15 * width / fx, cx / fx + 0.15 * width / fx)
    lim_y = ((height - cy) / fy + 0.15 * height / fy, cy / fy + 0.15 * height / fy)
    tx = z * torch.clamp(x / z, -lim_x[1], lim_x[0])
    ty = z * torch.clamp(y / z, -lim_y[1], lim_y[0])
    jac = torch.zeros(len(z), 2, 3, dtype=torch.float64)
    jac[:, 0, 0], jac[:, 0, 2] = fx / z, -fx * tx / z**2
    jac[:, 1, 1], jac[:, 1, 2] = fy / z, -fy * ty / z**2
    cov2 = jac @ cov @ jac.transpose(1, 2) + eps2d * torch.eye(2, dtype=torch.float64)
    conic = torch.linalg.inv(cov2)
    mean2 = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    extend = torch.clamp(torch.sqrt(2 * torch.log(torch.clamp(opac * 255, min=1.0))), max=3.33)
    radius = torch.ceil(extend[:, None] * torch.sqrt(torch.diagonal(cov2, dim1=1, dim2=2).clamp(min=0)))
    alive = (z >= 0.01) & (torch.linalg.det(cov2) > 0) & (opac >= 1 / 255) & (radius > 0).all(1)
    alive &= ((mean2 + radius) > 0).all(1) & (mean2[:, 0] - radius[:, 0] < width) & (mean2[:, 1] - radius[:, 1] < height)
    tiles_wh = torch.tensor([math.ceil(width / 16), math.ceil(height / 16)])
    lo = torch.clamp(torch.floor((mean2 - radius) / 16), min=0).long().minimum(tiles_wh)
    hi = torch.clamp(torch.ceil((mean2 + radius) / 16), min=0).long().minimum(tiles_wh)

    ii, jj = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pix = torch.stack([jj.flatten() + 0.5, ii.flatten() + 0.5], -1).double()
    tile = torch.stack([jj.flatten() // 16, ii.flatten() // 16], -1)
    d = mean2[:, None, :] - pix[None]  # (N, P, 2)
    sigma = 0.5 * torch.einsum("npi,nij,npj->np", d, conic, d)
    alpha = torch.clamp(opac[:, None] * torch.exp(-sigma), max=0.999)
    in_box = ((tile[None] >= lo[:, None]) & (tile[None] < hi[:, None])).all(-1)
    ambiguous = (alive[:, None] & in_box & ((alpha - 1 / 255).abs() < 1e-6)).any(0)
    alpha = torch.where(alive[:, None] & in_box & (sigma >= 0) & (alpha >= 1 / 255), alpha, 0.0)

    trans = torch.ones(len(pix), dtype=torch.float64)
    done = torch.zeros(len(pix), dtype=torch.bool)
    rgb = torch.zeros(len(pix), 3, dtype=torch.float64)
    depth = torch.zeros(len(pix), dtype=torch.float64)
    for i in torch.sort(z.float(), stable=True).indices.tolist():  # the reference loops on purpose
        a = alpha[i]
        nxt = trans * (1 - a)
        stop = (a > 0) & (nxt <= 1e-4)
        ambiguous |= (a > 0) & ~done & ((nxt - 1e-4).abs() < 1e-8)
        done |= stop
        use = (a > 0) & ~done
        rgb += torch.where(use[:, None], a[:, None] * trans[:, None] * colors[i], 0.0)
        depth += torch.where(use, a * trans * z[i], 0.0)
        trans = torch.where(use, nxt, trans)
    alpha_img = 1 - trans
    return (
        linear_to_srgb(rgb.float()).reshape(height, width, 3),
        (depth / alpha_img.clamp(min=1e-8)).float().reshape(height, width),
        alpha_img.float().reshape(height, width),
        ambiguous.reshape(height, width),
    )


def random_scene(seed: int, n: int, opaque: bool = False) -> Gaussians:
    """Random splats around z = 4 m; `opaque` makes most pixels reach the 1e-4 stop."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=gen) * torch.tensor([1.6, 1.2, 1.0]) + torch.tensor([0.0, 0.0, 4.0])
    scales = torch.exp(torch.rand(n, 3, generator=gen) * 3.0 - (4.0 if opaque else 5.0))  # 7 mm .. 13 cm
    opacities = torch.rand(n, generator=gen) * (0.5 if opaque else 1.0) + (0.5 if opaque else 0.0)
    return scene(
        means, scales, torch.rand(n, 3, generator=gen), opacities,
        quats=torch.randn(n, 4, generator=gen), focal=60.0, size=(72, 40),
    )


@pytest.mark.parametrize("compositor", COMPOSITORS)
@pytest.mark.parametrize("seed, opaque", [(0, False), (1, True)])
def test_torch_backend_matches_dense_reference(compositor, seed, opaque):
    g = random_scene(seed, 3000, opaque)
    w2c = sharp_core.camera.look_at((0.4, -0.2, -0.5), (0.0, 0.0, 4.0))
    cam = pinhole(60.0, 35.0, 21.0, w2c)
    out = render(g, cam, 72, 40, backend="torch", compositor=compositor)
    color, depth, alpha, ambiguous = dense_reference(g, cam, 72, 40)
    assert alpha.mean() > 0.3  # plenty of overlap
    if opaque:  # many pixels stop early: exercises the 1e-4 transmittance rule
        assert (alpha > 1 - 2e-4).float().mean() > 0.3
    assert ambiguous.float().mean() < 0.01
    sure = ~ambiguous
    assert (color - out.color)[sure].abs().max() < 1e-4
    assert (alpha - out.alpha)[sure].abs().max() < 1e-4
    assert ((depth - out.depth) * alpha)[sure].abs().max() < 1e-4


def test_small_memory_budget_gives_same_image():
    g = random_scene(2, 3000)
    cam = pinhole(60.0, 35.0, 21.0)
    full = render(g, cam, 72, 40, backend="torch", compositor="eager")
    for compositor in COMPOSITORS:
        tight = render(g, cam, 72, 40, backend="torch", compositor=compositor, memory_budget_mb=0.5)
        torch.testing.assert_close(tight.color, full.color, atol=1e-6, rtol=0)
        torch.testing.assert_close(tight.alpha, full.alpha, atol=1e-6, rtol=0)


def test_rendering_is_deterministic():
    g = random_scene(3, 3000)
    cam = pinhole(60.0, 35.0, 21.0)
    for compositor in COMPOSITORS:
        a = render(g, cam, 72, 40, compositor=compositor)
        b = render(g, cam, 72, 40, compositor=compositor)
        assert torch.equal(a.color, b.color) and torch.equal(a.depth, b.depth)


# -- API ------------------------------------------------------------------------------------------

def test_batched_cameras_and_batched_scenes():
    g = random_scene(4, 500)
    cams = [pinhole(60.0, 35.0, 21.0), pinhole(60.0, 35.0, 21.0, sharp_core.camera.look_at((0.3, 0, 0), (0, 0, 4)))]
    many = render(g, cams, 72, 40)
    assert isinstance(many, RenderResult)
    assert many.color.shape == (2, 40, 72, 3) and many.depth.shape == (2, 40, 72)
    torch.testing.assert_close(many.color[1], render(g, cams[1], 72, 40).color)
    torch.testing.assert_close(render_many(g, cams, 72, 40).alpha, many.alpha)
    other = random_scene(5, 500)
    pair = Gaussians(
        means=torch.cat([g.means, other.means]), scales=torch.cat([g.scales, other.scales]),
        quats=torch.cat([g.quats, other.quats]), colors=torch.cat([g.colors, other.colors]),
        opacities=torch.cat([g.opacities, other.opacities]), focal_px=[60.0, 60.0], image_size=[(72, 40)] * 2,
    )
    torch.testing.assert_close(render(pair, cams[0], 72, 40).color, render(g, cams[0], 72, 40).color)
    torch.testing.assert_close(render(pair, cams[0], 72, 40, scene=1).color, render(other, cams[0], 72, 40).color)
    with pytest.raises(IndexError, match="scene 2"):
        render(pair, cams[0], 72, 40, scene=2)


def test_public_name_is_callable_after_submodule_import():
    import sharp_core.rendering.torch_tiles  # noqa: F401  binds `rendering`, never `render`

    g = random_scene(6, 200)
    out = sharp_core.render(g, pinhole(60.0, 35.0, 21.0), 72, 40)
    assert out.color.shape == (40, 72, 3)


def test_bad_inputs_raise_clear_errors():
    g = random_scene(7, 10)
    cam = pinhole(60.0, 35.0, 21.0)
    with pytest.raises(TypeError, match="Camera"):
        render(g, torch.eye(4), 72, 40)
    with pytest.raises(TypeError, match="Gaussians"):
        render({"means": 1}, cam, 72, 40)
    with pytest.raises(ValueError, match="backend"):
        render(g, cam, 72, 40, backend="vulkan")
    with pytest.raises(ValueError, match="CUDA"):
        render(g, cam, 72, 40, backend="gsplat")
    with pytest.raises(ValueError, match="positive"):
        render(g, cam, 0, 40)
    with pytest.raises(ValueError, match="background"):
        render(g, cam, 72, 40, background=(1.0, 0.0))


# -- gsplat parity (needs CUDA and gsplat) -------------------------------------------------------

def _gsplat_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    from sharp_core.rendering.gsplat_backend import gsplat_import_error

    return gsplat_import_error() is None


@pytest.mark.skipif(not _gsplat_ready(), reason="needs a CUDA device with gsplat installed")
@pytest.mark.parametrize("antialiased", [False, True])
def test_gsplat_and_torch_backends_agree(antialiased):
    g = random_scene(8, 4000).to("cuda")
    cam = pinhole(60.0, 35.0, 21.0, sharp_core.camera.look_at((0.3, 0.1, -0.4), (0.0, 0.0, 4.0)))
    ref = render(g, cam, 72, 40, backend="gsplat", antialiased=antialiased)
    ours = render(g, cam, 72, 40, backend="torch", antialiased=antialiased)
    assert ref.backend == "gsplat" and ours.backend == "torch"
    assert (ref.color - ours.color).abs().max() < 2e-3  # __expf and fused arithmetic on the GPU
    assert (ref.alpha - ours.alpha).abs().max() < 2e-3


def test_segmented_scan_both_precisions():
    from sharp_core.rendering.torch_tiles import _segmented_cumsum

    gen = torch.Generator().manual_seed(0)
    keys = torch.sort(torch.randint(0, 40, (2000,), generator=gen)).values
    values = -torch.rand(2000, generator=gen)
    expected = torch.cat([values[keys == k].double().cumsum(0) for k in keys.unique()])
    torch.testing.assert_close(_segmented_cumsum(values.double(), keys), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(_segmented_cumsum(values, keys).double(), expected, atol=2e-5, rtol=0)
