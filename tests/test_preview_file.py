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
from sharp_core.preview_file import (
    DEFAULT_MAX_SPLATS, HEADER_BYTES, RECORD_BYTES, decode_preview, encode_preview, read_preview, write_preview,
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


def test_decimation_keeps_the_most_visible_splats_in_order():
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
    # exactly the 500 best-scored splats, in their original order
    expected = torch.topk(visibility_scores(scene)[0], 500).indices.sort().values
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
    assert np.allclose(decoded.means, scenes.means[0].numpy(), rtol=1e-3, atol=1e-6)


@pytest.fixture
def fake_folder_paths(comfy_base):
    return comfy_base / "temp"


def test_preview_node_writes_file_and_ui_lists(fake_folder_paths):
    from nodes.preview import NODE_CLASS_MAPPINGS, SharpPreviewGaussians, preview_ui

    assert NODE_CLASS_MAPPINGS["SharpPreviewGaussians"] is SharpPreviewGaussians
    assert SharpPreviewGaussians.OUTPUT_NODE is True
    scenes = random_scene(3000, batch=2)
    out = SharpPreviewGaussians().preview(scenes, max_splats=1000)
    assert out["result"] == ()
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
