"""Preview file: round trip within the documented quantisation, visibility decimation, size budget,
atomic writes, clear errors, and the Preview Gaussians node's `ui` entry."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from comfy_env import comfy_base  # noqa: F401  (fixture)
from sharp_core.color import linear_to_srgb
from sharp_core.gaussians import Gaussians
from sharp_core.edit import visibility_scores
from sharp_core import edit
from sharp_core.preview_file import (
    DEFAULT_MAX_SPLATS, FLAG_CAMERA_FRAMED, FLAG_VISIBILITY_ORDERED, HEADER_BYTES, HEADER_BYTES_V1, PREVIEW_VERSION, RECORD_BYTES,
    InitialView, decode_preview, encode_preview, initial_view, preview_order, read_preview, write_preview,
)

SHARP_SPLATS = 2 * 768 * 768  # 1,179,648


def random_scene(n: int, seed: int = 0, batch: int = 1) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    z = 0.5 + 30.0 * torch.rand(batch, n, generator=g) ** 2
    xy = (torch.rand(batch, n, 2, generator=g) - 0.5) * z[..., None]
    return Gaussians(
        means=torch.cat([xy, z[..., None]], -1),
        scales=torch.exp(torch.randn(batch, n, 3, generator=g) - 5.0),
        quats=torch.randn(batch, n, 4, generator=g),  # not normalised: the writer must cope
        colors=torch.rand(batch, n, 3, generator=g),
        opacities=torch.rand(batch, n, generator=g),
        focal_px=[1100.0] * batch, image_size=[(1536, 1024)] * batch,
    )


def test_round_trip_within_documented_error():
    scene = random_scene(20_000)
    decoded = decode_preview(encode_preview(scene))
    scene = scene.select(preview_order(scene))  # the file stores the splats most visible first
    means = scene.means[0].numpy()
    # float16: |err| <= 2^-11 |x| for normal values, 2^-25 absolute for subnormals
    bound = np.maximum(np.abs(means) * 2.0**-11, 2.0**-25) * 1.0001
    assert np.all(np.abs(decoded.means - means) <= bound)
    srgb = linear_to_srgb(scene.colors[0]).numpy()
    decoded_srgb = linear_to_srgb(torch.from_numpy(decoded.colors)).numpy()
    assert np.abs(decoded_srgb - srgb).max() <= 0.5 / 255 + 1e-5
    assert np.abs(decoded.opacities - scene.opacities[0].numpy()).max() <= 0.5 / 255 + 1e-6
    lo, hi = decoded.log_scale_range
    log_err = np.abs(np.log(decoded.scales) - np.log(scene.scales[0].numpy()))
    assert log_err.max() <= 0.5 * (hi - lo) / 255 + 1e-5
    # rotations: covariances agree to a few percent of each splat's largest variance
    cov = scene.covariances()[0]
    cov_decoded = decoded.to_gaussians().covariances()[0]
    largest = scene.scales[0].max(dim=1).values ** 2
    rel = ((cov_decoded - cov).abs().amax(dim=(1, 2)) / largest)
    assert float(rel.max()) < 0.08, float(rel.max())
    assert float(rel.mean()) < 0.02, float(rel.mean())
    # rotations alone (scales identical) land within the 7-bit grid: about a degree
    q = torch.nn.functional.normalize(scene.quats[0], dim=1)
    dot = (q * torch.from_numpy(decoded.quats)).sum(1).abs().clamp(max=1)
    assert float(torch.rad2deg(2 * torch.acos(dot)).max()) < 2.5
    # header
    assert decoded.focal_px == pytest.approx(1100.0)
    assert decoded.image_size == (1536, 1024)
    assert np.allclose(decoded.bbox_min, means.min(0)) and np.allclose(decoded.bbox_max, means.max(0))
    assert means[:, 2].min() < decoded.focus_depth < means[:, 2].max()


def test_sharp_sized_scene_fits_the_budget_and_keeps_splats():
    scene = random_scene(SHARP_SPLATS, seed=1)
    data = encode_preview(scene, max_splats=DEFAULT_MAX_SPLATS)
    assert len(data) <= 16_000_000
    assert len(data) == HEADER_BYTES + DEFAULT_MAX_SPLATS * RECORD_BYTES
    assert RECORD_BYTES <= 16
    everything = encode_preview(scene)  # max_splats None keeps all
    assert len(everything) == HEADER_BYTES + SHARP_SPLATS * RECORD_BYTES


def test_records_are_most_visible_first_and_decimation_keeps_the_most_visible():
    n = 5000
    scene = random_scene(n, seed=2)
    # plant 100 splats that are big, opaque and close: they must all survive a 10x decimation
    star = torch.arange(0, n, 50)
    scene.means[0, star] = torch.tensor([0.0, 0.0, 1.0]) + 0.001 * torch.arange(len(star))[:, None]
    scene.scales[0, star] = 0.05
    scene.opacities[0, star] = 1.0
    # and 100 that are nearly transparent: none may survive
    faint = star + 25
    scene.opacities[0, faint] = 1e-4
    decoded = decode_preview(encode_preview(scene, max_splats=500))
    assert decoded.means.shape == (500, 3)
    # exactly the 500 best-scored splats, best first (so any prefix is a coarse scene)
    scores = visibility_scores(scene)[0]
    expected = scores.argsort(descending=True, stable=True)[:500]
    assert bool((scores[expected][1:] <= scores[expected][:-1]).all())
    assert int.from_bytes(encode_preview(scene, max_splats=500)[12:16], "little") & FLAG_VISIBILITY_ORDERED
    assert set(star.tolist()) <= set(expected.tolist()) and not set(faint.tolist()) & set(expected.tolist())
    as_half = scene.means[0, expected].numpy().astype(np.float16).astype(np.float32)
    assert np.array_equal(decoded.means, as_half)
    assert float(decoded.opacities.min()) > 1e-3
    with pytest.raises(ValueError, match="max_splats"):
        encode_preview(scene, max_splats=-5)


def test_write_is_atomic_and_reads_back(tmp_path):
    scene = random_scene(1000)
    path = write_preview(scene, tmp_path / "sub" / "scene.shpv")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["scene.shpv"]
    assert read_preview(path).means.shape == (1000, 3)

    bad = random_scene(10)
    bad.means[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        write_preview(bad, tmp_path / "bad.shpv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_decoder_rejects_bad_files():
    data = encode_preview(random_scene(10))
    with pytest.raises(ValueError, match="magic"):
        decode_preview(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="bytes"):
        decode_preview(data[:-3])
    with pytest.raises(ValueError, match="header"):
        decode_preview(data[:10])


def test_batch_writes_scene_zero_only():
    scenes = random_scene(100, batch=2)
    decoded = decode_preview(encode_preview(scenes))
    expected = scenes[0].select(preview_order(scenes)).means[0].numpy()
    assert np.allclose(decoded.means, expected, rtol=1e-3, atol=1e-6)


def sharp_like_scene(width: int = 160, height: int = 120, focal: float = 150.0, seed: int = 0) -> Gaussians:
    """Two layers of one splat per pixel, unprojected through the source camera like SHARP's output:
    every splat inside the frustum, its size growing with its depth (pixel footprint z / f)."""
    g = torch.Generator().manual_seed(seed)
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    depth = 2.0 + 6.0 * torch.rand(height, width, generator=g)
    z = torch.cat([depth.flatten(), (depth + 1.5).flatten()])
    u, v = u.flatten().repeat(2), v.flatten().repeat(2)
    means = torch.stack([(u - width / 2) * z / focal, (v - height / 2) * z / focal, z], 1)
    n = means.shape[0]
    return Gaussians(
        means=means[None], scales=((z / focal)[:, None] * torch.exp(0.2 * torch.randn(n, 3, generator=g)))[None],
        quats=torch.randn(1, n, 4, generator=g), colors=torch.rand(1, n, 3, generator=g),
        opacities=0.2 + 0.8 * torch.rand(1, n, generator=g), focal_px=[focal], image_size=[(width, height)],
    )


def project(view: InitialView, points: np.ndarray, focal: float, size: tuple[int, int]) -> np.ndarray:
    """(M,3) world points -> (M,3) pixel u, v and camera depth through the view's camera."""
    m = view.world_to_camera()
    cam = points @ m[:3, :3].T + m[:3, 3]
    return np.stack([focal * cam[:, 0] / cam[:, 2] + size[0] / 2, focal * cam[:, 1] / cam[:, 2] + size[1] / 2,
                     cam[:, 2]], 1)


def robust_box_corners(means: np.ndarray) -> np.ndarray:
    """(8,3) corners of the box spanning the 10-90 % quantiles of each axis."""
    low, high = np.quantile(means, 0.1, axis=0), np.quantile(means, 0.9, axis=0)
    return np.array([[(low, high)[(k >> a) & 1][a] for a in range(3)] for k in range(8)])


def test_sharp_scene_keeps_the_source_camera():
    scene = sharp_like_scene()
    view = initial_view(scene)
    decoded = decode_preview(encode_preview(scene))
    assert view.camera_framed and decoded.view == view
    assert view == InitialView.source_camera(decoded.focus_depth)
    assert view.target == (0.0, 0.0, pytest.approx(decoded.focus_depth)) and view.distance == view.target[2]
    assert np.array_equal(view.world_to_camera(), np.eye(4))
    data = encode_preview(scene)
    assert int.from_bytes(data[12:16], "little") & FLAG_CAMERA_FRAMED


def test_edited_y_up_scene_is_framed_about_its_centre():
    scene = sharp_like_scene()
    edited = edit.transform(edit.recenter(scene), rotation=edit.OPENCV_TO_Y_UP)
    means = edited.means[0].numpy()
    # the source camera at the origin, looking along +z, now sees (almost) nothing in front of it
    assert (means[:, 2] > 0.01).mean() < 0.6
    view = decode_preview(encode_preview(edited)).view
    assert not view.camera_framed
    span = np.quantile(means, 0.9, axis=0) - np.quantile(means, 0.1, axis=0)
    assert np.all(np.abs(np.array(view.target) - np.median(means, axis=0)) < 0.05 * span.max())
    # looking at the front of the scene, upright: SHARP's view direction after the half turn about x
    assert view.forward == (0.0, 0.0, -1.0) and view.up == (0.0, 1.0, 0.0)
    focal, size = edited.focal_px[0], edited.image_size[0]
    pixels = project(view, robust_box_corners(means), focal, size)
    assert np.all(pixels[:, 2] > 0.01), "the robust extent must lie in front of the camera"
    assert np.all((pixels[:, 0] >= 0) & (pixels[:, 0] <= size[0]) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= size[1]))
    # and fill a good part of the image: not framed from needlessly far away
    filled = max(np.ptp(pixels[:, 0]) / size[0], np.ptp(pixels[:, 1]) / size[1])
    assert filled > 0.5, filled
    # the target projects to the image centre
    centre = project(view, np.array([view.target]), focal, size)[0]
    assert centre[:2] == pytest.approx([size[0] / 2, size[1] / 2]) and centre[2] == pytest.approx(view.distance)


def test_direction_follows_the_frame_the_scene_is_in():
    scene = sharp_like_scene(80, 60, 75.0)
    # only re-centred: still OpenCV axes, so the camera looks along +z with y down
    moved = initial_view(edit.recenter(scene))
    assert not moved.camera_framed and moved.forward == (0.0, 0.0, 1.0) and moved.up == (0.0, -1.0, 0.0)
    # only turned y-up (not re-centred): the whole scene lies behind the source camera; the view
    # looks along -z from the side the photo was taken
    turned = edit.transform(scene, rotation=edit.OPENCV_TO_Y_UP)
    view = initial_view(turned)
    assert view.forward == (0.0, 0.0, -1.0) and view.up == (0.0, 1.0, 0.0)
    camera = np.array(view.target) - view.distance * np.array(view.forward)
    assert camera[2] > turned.means[0, :, 2].max().item() - 1.0
    # a scene without SHARP's size-depth relation: the camera goes to the side of the median z
    flat = random_scene(3000)
    flat.means[0, :, 2] *= -1.0
    view = initial_view(flat)
    assert not view.camera_framed and view.forward == (0.0, 0.0, -1.0)
    # flat splats far away, round ones near (a weak, spurious size-depth trend) do not decide either
    far = flat.means[0, :, 2] < -15.0
    flat.scales[0, far, 0] *= 0.05
    view = initial_view(flat)
    assert view.forward == (0.0, 0.0, -1.0) and view.up == (0.0, 1.0, 0.0)


def test_header_round_trip_and_version_1_files():
    edited = edit.transform(edit.recenter(sharp_like_scene(80, 60, 75.0)), rotation=edit.OPENCV_TO_Y_UP,
                            translation=[2.0, -1.0, 0.5])
    data = encode_preview(edited)
    assert int.from_bytes(data[4:8], "little") == PREVIEW_VERSION == 2 and len(data) == HEADER_BYTES + 9600 * 16
    decoded = decode_preview(data)
    expected = initial_view(edited)
    assert decoded.view.camera_framed is False and decoded.view.forward == expected.forward
    assert decoded.view.up == expected.up
    assert np.allclose(decoded.view.target, expected.target, rtol=1e-6, atol=1e-6)
    assert decoded.view.distance == pytest.approx(expected.distance, rel=1e-6)
    # a version 1 file: the same first 64 bytes (flags 0), no view fields, records right after
    v1 = data[:4] + (1).to_bytes(4, "little") + data[8:12] + bytes(4) + data[16:HEADER_BYTES_V1] + data[HEADER_BYTES:]
    old = decode_preview(v1)
    assert old.view == InitialView.source_camera(decoded.focus_depth)
    assert np.array_equal(old.means, decoded.means) and np.array_equal(old.quats, decoded.quats)
    with pytest.raises(ValueError, match="version 3"):
        decode_preview(data[:4] + (3).to_bytes(4, "little") + data[8:])


def test_initial_view_of_a_sharp_sized_scene():
    scene = edit.transform(edit.recenter(sharp_like_scene(768, 768, 700.0)), rotation=edit.OPENCV_TO_Y_UP)
    assert scene.num_gaussians == SHARP_SPLATS
    view = initial_view(scene)
    assert view.forward == (0.0, 0.0, -1.0) and view.distance > 0
    pixels = project(view, robust_box_corners(scene.means[0, ::16].numpy()), 700.0, (768, 768))
    assert np.all((pixels[:, :2] >= 0) & (pixels[:, :2] <= 768)) and np.all(pixels[:, 2] > 0)


@pytest.fixture
def fake_folder_paths(comfy_base):
    return comfy_base / "temp"


def test_preview_node_writes_file_and_ui_lists(fake_folder_paths):
    from nodes.preview import NODE_CLASS_MAPPINGS, SharpPreviewGaussians, preview_ui

    assert NODE_CLASS_MAPPINGS["SharpPreviewGaussians"] is SharpPreviewGaussians
    assert SharpPreviewGaussians.OUTPUT_NODE is True
    scenes = random_scene(3000, batch=2)
    out = SharpPreviewGaussians().preview(scenes, max_splats=1000)
    (views,) = out["result"]  # no stored view: the view the preview opens at
    assert len(views) == 1 and views[0]["width"] == 1536 and views[0]["height"] == 1024
    entries = out["ui"]["sharp_preview"]
    assert isinstance(entries, list) and len(entries) == 2
    for i, entry in enumerate(entries):
        assert entry["type"] == "temp" and entry["subfolder"] == "sharp_preview"
        assert entry["image_size"] == [1536, 1024] and entry["focal_px"] == pytest.approx(1100.0)
        assert entry["splats"] == 1000 and entry["total_splats"] == 3000
        decoded = read_preview(fake_folder_paths / entry["subfolder"] / entry["filename"])
        assert decoded.means.shape == (1000, 3)
        assert np.isin(decoded.means[:, 2], scenes.means[i, :, 2].numpy().astype(np.float16)).all()
    assert entries[0]["filename"] != entries[1]["filename"]
    # 0 keeps everything; shared helper for the save node
    ui = preview_ui(random_scene(50), 0)
    assert ui["sharp_preview"][0]["splats"] == 50
    with pytest.raises(TypeError, match="SHARP_GAUSSIANS"):
        preview_ui("not a scene", 10)
