"""PlayCanvas compressed PLY: round trip inside the stated quantisation bounds, splat-transform reads
our files as we do, we read splat-transform's files, and bad files get a clear error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from format_scenes import assert_ply_holds, quat_error, sharp_like_scene
from sharp_core import load_gaussians, save_gaussians, save_ply
from sharp_core.color import linear_to_srgb
from sharp_core.formats.compressed_ply import CHUNK_SIZE, load_compressed_ply
from sharp_core.formats.quantize import morton_order
from third_party_readers import assert_stats_match, match_splats, scene_stats, splat_transform  # noqa: F401


def _chunk_spans(values: np.ndarray) -> np.ndarray:
    """(N, C) per-splat range (max - min) of the chunk of 256 the value falls in."""
    n = len(values)
    c = math.ceil(n / CHUNK_SIZE)
    padded = np.concatenate([values, np.repeat(values[-1:], c * CHUNK_SIZE - n, axis=0)])
    blocks = padded.reshape(c, CHUNK_SIZE, -1).astype(np.float64)
    span = blocks.max(axis=1) - blocks.min(axis=1)
    return np.repeat(span, CHUNK_SIZE, axis=0)[:n]


def _assert_within_bounds(original, decoded, what: str) -> None:
    """decoded (in file order = Morton order of original) against the module docstring's bounds."""
    o = original.to(dtype=torch.float64)
    order = torch.from_numpy(morton_order(original.means[0].numpy()))
    means, scales = o.means[0][order], o.scales[0][order]
    log_scales = scales.clamp(min=math.exp(-20)).log()
    srgb = linear_to_srgb(o.colors[0][order])
    d = decoded.to(dtype=torch.float64)
    steps = torch.tensor([4094.0, 2046.0, 4094.0], dtype=torch.float64)
    eps = 1e-6
    span = torch.from_numpy(_chunk_spans(means.numpy()))
    assert ((d.means[0] - means).abs() <= span / steps + eps).all(), f"{what}: position outside its bound"
    span = torch.from_numpy(_chunk_spans(log_scales.numpy()))
    assert ((d.scales[0].log() - log_scales).abs() <= span / steps + eps).all(), f"{what}: log-scale outside its bound"
    span = torch.from_numpy(_chunk_spans(srgb.numpy()))
    assert ((linear_to_srgb(d.colors[0]) - srgb).abs() <= span / 510 + eps).all(), f"{what}: colour outside its bound"
    opacity = o.opacities[0][order]
    bound = torch.where((opacity < 1 / 255) | (opacity > 254 / 255), 1 / 255, 1 / 510)
    assert ((d.opacities[0] - opacity).abs() <= bound + eps).all(), f"{what}: opacity outside its bound"
    assert (quat_error(d.quats[0], o.quats[0][order]) <= 2.1e-3).all(), f"{what}: rotation outside its bound"
    assert torch.isfinite(d.means).all() and torch.isfinite(d.scales).all() and torch.isfinite(d.opacities).all()


def test_round_trip_within_quantisation_bounds(tmp_path):
    scene = sharp_like_scene()  # 3072 splats: 12 chunks; opacity 0 / 1 and a zero scale included
    path = save_gaussians(scene, tmp_path / "scene.compressed.ply")
    n = scene.num_gaussians
    assert path.stat().st_size == len(path.read_bytes().split(b"end_header\n", 1)[0]) + 11 + 72 * 12 + 16 * n
    back = load_gaussians(path)  # sniffed from the bytes, not the name
    assert back.num_gaussians == n
    assert back.focal_px == pytest.approx(scene.focal_px) and back.image_size == scene.image_size
    _assert_within_bounds(scene, back, "round trip")
    # the scale-0 splat reads back as e^-20 (finite), opacity 0 and 1 as 1/255 and 254/255
    order = morton_order(scene.means[0].numpy())
    where = {int(i): k for k, i in enumerate(order)}
    assert back.opacities[0][where[0]] == pytest.approx(1 / 255) and back.opacities[0][where[1]] == pytest.approx(254 / 255)
    assert back.scales[0][where[4]].max() <= math.exp(-20) * 1.01
    # a renamed file still loads (sniffing), and the chunk layout reads with or without colour ranges
    renamed = tmp_path / "renamed.ply"
    renamed.write_bytes(path.read_bytes())
    assert load_gaussians(renamed).num_gaussians == n


def test_partial_chunk_and_degenerate_ranges(tmp_path):
    scene = sharp_like_scene(width=10, height=7, layers=1, edge_values=False)  # 70 splats: one partial chunk
    scene.means[0, :] = scene.means[0, 0]  # every splat at one point: zero position range
    path = save_gaussians(scene, tmp_path / "flat.compressed.ply")
    back = load_compressed_ply(path)
    torch.testing.assert_close(back.means[0], scene.means[0], atol=1e-6, rtol=0)
    empty = scene.select(torch.zeros(scene.num_gaussians, dtype=torch.bool))
    assert load_compressed_ply(save_gaussians(empty, tmp_path / "empty.compressed.ply")).num_gaussians == 0


def test_splat_transform_reads_our_file_as_we_do(tmp_path, splat_transform):
    scene = sharp_like_scene(seed=1)
    path = save_gaussians(scene, tmp_path / "ours.compressed.ply")
    ours = load_compressed_ply(path)
    stats, out = splat_transform.stats(path), splat_transform.convert(path, tmp_path / "theirs.ply")
    assert stats.format == "ply", stats.format  # splat-transform names compressed PLYs "ply" too
    tolerance = {"position": 2e-3, "rotation": 2e-3, "scale": 2e-4, "opacity": 1 / 255 + 1e-6, "color": 2e-3}
    assert_stats_match(stats, scene_stats(scene), tolerance, "splat-transform reading our compressed PLY",
                       skip=("rot_0", "rot_1", "rot_2", "rot_3"))  # smallest-three flips q's sign
    # splat by splat, splat-transform's decoding is ours (same order, float32 agreement)
    assert_ply_holds(out, ours, opacity_atol=1e-5, what="splat-transform's decoding of our compressed PLY")


def test_we_read_splat_transforms_file(tmp_path, splat_transform):
    scene = sharp_like_scene(seed=2)
    theirs = splat_transform.convert(save_ply(scene, tmp_path / "scene.ply"), tmp_path / "theirs.compressed.ply")
    back = load_gaussians(theirs)
    assert back.num_gaussians == scene.num_gaussians
    idx = match_splats(scene.means[0], back.means[0], max_distance=0.05)
    o, b = scene.to(dtype=torch.float64), back.to(dtype=torch.float64)
    # their chunks (their own Morton order) bound the error just like ours; check against loose
    # global versions of the same bounds plus the exact-ish opacity and rotation ones
    extent = (o.means[0].amax(0) - o.means[0].amin(0))
    assert ((b.means[0][idx] - o.means[0]).abs() <= extent / 2046).all()
    assert ((b.opacities[0][idx] - o.opacities[0]).abs() <= 1 / 510 + 1e-6).all()  # theirs: no clamp
    assert (quat_error(b.quats[0][idx], o.quats[0]) <= 2.1e-3).all()
    log_s = o.scales[0].clamp(min=math.exp(-20)).log()
    assert ((b.scales[0][idx].log() - log_s).abs() <= (log_s.amax(0) - log_s.amin(0)) / 2046 + 1e-6).all()
    srgb_err = (linear_to_srgb(b.colors[0][idx]) - linear_to_srgb(o.colors[0])).abs()
    assert (srgb_err <= 1 / 510 + 1e-4).all()


# -- bad input ------------------------------------------------------------------------------------


def _good_file(tmp_path) -> bytes:
    scene = sharp_like_scene(width=16, height=16, layers=1, edge_values=False)
    return save_gaussians(scene, tmp_path / "good.compressed.ply").read_bytes()


@pytest.mark.parametrize("case", ["truncated", "wrong_magic", "big_endian", "too_many_splats", "chunk_count", "float_packed"])
def test_bad_files_get_a_clear_error(tmp_path, case):
    good = _good_file(tmp_path)
    header, body = good.split(b"end_header\n", 1)
    data = {
        "truncated": good[:-100],
        "wrong_magic": b"plx" + good[3:],
        "big_endian": good.replace(b"binary_little_endian", b"binary_big_endian"),
        "too_many_splats": header.replace(b"element vertex 256", b"element vertex 4000000000")
        .replace(b"element chunk 1", b"element chunk 15625000") + b"end_header\n" + body,
        "chunk_count": header.replace(b"element chunk 1", b"element chunk 2") + b"end_header\n" + body,
        "float_packed": header.replace(b"property uint packed_color", b"property float packed_color") + b"end_header\n" + body,
    }[case]
    expected = {
        "truncated": "truncated", "wrong_magic": "not a PLY", "big_endian": "little_endian",
        "too_many_splats": "truncated", "chunk_count": "chunks for", "float_packed": "must be uint",
    }[case]
    path = tmp_path / f"{case}.compressed.ply"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=expected) as error:
        load_compressed_ply(path)
    assert str(path) in str(error.value)


def test_header_comment_metadata_is_checked(tmp_path):
    good = _good_file(tmp_path)
    bad = good.replace(b"comment sharp_image_size 16 16", b"comment sharp_image_size 16 x")
    path = tmp_path / "bad_comment.compressed.ply"
    path.write_bytes(bad)
    with pytest.raises(ValueError, match="sharp_image_size"):
        load_compressed_ply(path)
