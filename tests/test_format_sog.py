"""PlayCanvas SOG: round trip inside the stated quantisation bounds (bundle and meta.json + images),
splat-transform reads our files as we do, we read splat-transform's files, bad files get a clear
error without large allocations, and writes are atomic."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
import torch

from format_scenes import assert_ply_holds, quat_error, sharp_like_scene
from sharp_core import load_gaussians, save_gaussians, save_ply
from sharp_core.color import SH_C0, linear_to_srgb
from sharp_core.formats import sog
from sharp_core.formats.quantize import morton_order
from third_party_readers import assert_stats_match, match_splats, scene_stats, splat_transform  # noqa: F401


def with_sh(scene, k: int = 8, seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    scene.sh_rest = 0.3 * torch.randn(1, scene.num_gaussians, k, 3, generator=g)
    return scene


def _half_gap(codebook) -> float:
    book = np.asarray(codebook, dtype=np.float64)
    return float(np.diff(book).max() / 2) if len(book) > 1 else 0.0


def _bundle_meta(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("meta.json"))


def _assert_within_bounds(original, decoded, meta: dict, what: str) -> None:
    """decoded (file order = Morton order of original) against the module docstring's bounds."""
    order = torch.from_numpy(morton_order(original.means[0].numpy()))
    o = original.to(dtype=torch.float64)
    d = decoded.to(dtype=torch.float64)
    eps = 1e-6
    means = o.means[0][order]
    span = torch.tensor(meta["means"]["maxs"], dtype=torch.float64) - torch.tensor(meta["means"]["mins"], dtype=torch.float64)
    bound = (means.abs() + 1) * span / 131070 * 1.0001 + 1e-6
    assert ((d.means[0] - means).abs() <= bound).all(), f"{what}: position outside its bound"
    log_s = o.scales[0][order].clamp(min=float(np.finfo(np.float32).tiny)).log()
    assert ((d.scales[0].log() - log_s).abs() <= _half_gap(meta["scales"]["codebook"]) + 1e-5).all(), f"{what}: scale"
    f_dc = (linear_to_srgb(o.colors[0][order]) - 0.5) / SH_C0
    f_dc_back = (linear_to_srgb(d.colors[0]) - 0.5) / SH_C0
    assert ((f_dc_back - f_dc).abs() <= _half_gap(meta["sh0"]["codebook"]) + 1e-4).all(), f"{what}: colour outside its bound"
    assert ((d.opacities[0] - o.opacities[0][order]).abs() <= 1 / 510 + eps).all(), f"{what}: opacity outside its bound"
    assert (quat_error(d.quats[0], o.quats[0][order]) <= 3 / (255 * math.sqrt(2)) + 1e-4).all(), f"{what}: rotation"
    for t in (d.means, d.scales, d.quats, d.colors, d.opacities):
        assert torch.isfinite(t).all()


def test_bundle_round_trip_within_quantisation_bounds(tmp_path):
    scene = sharp_like_scene()  # 3072 splats; opacity 0 / 1, a zero scale, pure colours
    path = save_gaussians(scene, tmp_path / "scene.sog")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert names[-1] == "meta.json" and all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
    meta = _bundle_meta(path)
    assert meta["version"] == 2 and meta["count"] == scene.num_gaussians and "shN" not in meta
    assert sorted(names) == sorted(["meta.json", "means_l.webp", "means_u.webp", "scales.webp", "quats.webp", "sh0.webp"])
    back = load_gaussians(path)
    assert back.num_gaussians == scene.num_gaussians
    assert back.focal_px == pytest.approx(scene.focal_px) and back.image_size == scene.image_size
    _assert_within_bounds(scene, back, meta, "bundle round trip")
    order = morton_order(scene.means[0].numpy())
    where = {int(i): k for k, i in enumerate(order)}
    assert back.opacities[0][where[0]] == 0.0 and back.opacities[0][where[1]] == 1.0
    renamed = tmp_path / "renamed.bin"  # recognised by its bytes
    renamed.write_bytes(path.read_bytes())
    assert load_gaussians(renamed).num_gaussians == scene.num_gaussians


def test_unbundled_files_decode_like_the_bundle_and_share_a_folder(tmp_path):
    scene = sharp_like_scene(seed=3)
    other = sharp_like_scene(seed=4, width=20, height=10)
    bundle = load_gaussians(save_gaussians(scene, tmp_path / "scene.sog"))
    meta_path = save_gaussians(scene, tmp_path / "set" / "meta.json")
    save_gaussians(other, tmp_path / "set" / "other_meta.json")
    files = sorted(p.name for p in (tmp_path / "set").iterdir())
    assert "means_l.webp" in files and "other_means_l.webp" in files and "other_meta.json" in files
    loose = load_gaussians(meta_path)
    for a, b in zip((loose.means, loose.scales, loose.quats, loose.colors, loose.opacities),
                    (bundle.means, bundle.scales, bundle.quats, bundle.colors, bundle.opacities)):
        assert torch.equal(a, b)
    assert load_gaussians(tmp_path / "set" / "other_meta.json").num_gaussians == other.num_gaussians


def test_sh_bands_round_trip_through_the_palette(tmp_path):
    scene = with_sh(sharp_like_scene(width=24, height=16))  # 768 splats < palette: one centroid each
    path = save_gaussians(scene, tmp_path / "sh.sog")
    meta = _bundle_meta(path)
    assert meta["shN"]["bands"] == 2 and meta["shN"]["count"] == scene.num_gaussians
    back = load_gaussians(path)
    order = torch.from_numpy(morton_order(scene.means[0].numpy()))
    assert back.sh_rest.shape == scene.sh_rest.shape
    err = (back.sh_rest[0] - scene.sh_rest[0][order]).abs()
    assert float(err.max()) <= _half_gap(meta["shN"]["codebook"]) + 1e-5
    # a palette smaller than the splat count clusters: lossy, but close on average
    small = load_gaussians(save_gaussians(scene, tmp_path / "small.sog", sh_palette=64))
    err = (small.sh_rest[0] - scene.sh_rest[0][order]).abs().mean()
    assert float(err) < float(scene.sh_rest.abs().mean())


def test_empty_and_single_point_scenes(tmp_path):
    scene = sharp_like_scene(width=10, height=7, layers=1, edge_values=False)
    scene.means[0, :] = scene.means[0, 0]  # zero range on every axis
    back = load_gaussians(save_gaussians(scene, tmp_path / "flat.sog"))
    torch.testing.assert_close(back.means[0], scene.means[0], atol=1e-6, rtol=0)
    empty = scene.select(torch.zeros(scene.num_gaussians, dtype=torch.bool))
    assert load_gaussians(save_gaussians(empty, tmp_path / "empty.sog")).num_gaussians == 0


def test_splat_transform_reads_our_sog_as_we_do(tmp_path, splat_transform):
    scene = sharp_like_scene(seed=1)
    path = save_gaussians(scene, tmp_path / "ours.sog")
    ours = load_gaussians(path)
    stats = splat_transform.stats(path)
    # both decode the same bytes: their statistics are those of our decoding (float32 apart); how
    # far the decoding is from the scene is bounded in test_bundle_round_trip_within_quantisation_bounds
    tolerance = {"position": 1e-5, "rotation": 1e-5, "scale": 1e-6, "opacity": 2e-6, "color": 1e-5}
    assert_stats_match(stats, scene_stats(ours), tolerance, "splat-transform reading our .sog")
    # splat-transform keeps opacity in (0, 1) through a clamped logit: 0 / 1 come back as 1e-6 / 1 - 1e-6
    assert_ply_holds(splat_transform.convert(path, tmp_path / "theirs.ply"), ours, opacity_atol=2e-6,
                     what="splat-transform's decoding of our .sog")


def test_splat_transform_reads_our_sh_bands(tmp_path, splat_transform):
    scene = with_sh(sharp_like_scene(width=24, height=16), k=15)
    stats = splat_transform.stats(save_gaussians(scene, tmp_path / "sh.sog"))
    assert stats.count == scene.num_gaussians and stats.shBands == 3


@pytest.mark.parametrize("name", ["theirs.sog", "meta.json"])
def test_we_read_splat_transforms_sog(tmp_path, splat_transform, name):
    scene = sharp_like_scene(seed=2)
    theirs = splat_transform.convert(save_ply(scene, tmp_path / "scene.ply"), tmp_path / name)
    back = load_gaussians(theirs)
    assert back.num_gaussians == scene.num_gaussians
    meta = _bundle_meta(theirs) if name.endswith(".sog") else json.loads(theirs.read_text())
    idx = match_splats(scene.means[0], back.means[0], max_distance=0.01)
    o, b = scene.to(dtype=torch.float64), back.to(dtype=torch.float64)
    span = torch.tensor(meta["means"]["maxs"], dtype=torch.float64) - torch.tensor(meta["means"]["mins"], dtype=torch.float64)
    assert ((b.means[0][idx] - o.means[0]).abs() <= (o.means[0].abs() + 1) * span / 65535 + 1e-6).all()  # they truncate
    assert ((b.opacities[0][idx] - o.opacities[0]).abs() <= 1 / 255 + 1e-6).all()
    assert (quat_error(b.quats[0][idx], o.quats[0]) <= 6 / (255 * math.sqrt(2))).all()
    # their codebooks are not pinned to the extremes: the bound is half the widest gap or the
    # distance from the most extreme value to its end entry
    log_s = o.scales[0].clamp(min=float(np.finfo(np.float32).tiny)).log()
    big = log_s > -20  # the zero scale has its own entry
    assert ((b.scales[0][idx].log() - log_s).abs()[big] <= _codebook_bound(meta["scales"]["codebook"][1:], log_s[big]) + 1e-5).all()
    # splat-transform's default WebP encoding drops the colour of fully transparent texels
    # (opacity 0 is alpha 0 in sh0.webp); ours encodes with exact=True and keeps it
    seen = o.opacities[0] >= 1 / 255
    f_dc = (linear_to_srgb(o.colors[0]) - 0.5) / SH_C0
    err = ((linear_to_srgb(b.colors[0][idx]) - 0.5) / SH_C0 - f_dc).abs()[seen]
    assert (err <= _codebook_bound(meta["sh0"]["codebook"], f_dc[seen]) + 1e-4).all()


def _codebook_bound(codebook, values) -> float:
    book = np.asarray(codebook, dtype=np.float64)
    return max(_half_gap(book), float(values.max()) - book[-1], book[0] - float(values.min()))


# -- bad input ------------------------------------------------------------------------------------


def _good_bundle(tmp_path) -> dict[str, bytes]:
    scene = sharp_like_scene(width=16, height=16, layers=1, edge_values=False)
    with zipfile.ZipFile(save_gaussians(scene, tmp_path / "good.sog")) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _webp(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 0, 0, 255)).save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue()


def _with_meta(entries: dict[str, bytes], **changes) -> dict[str, bytes]:
    meta = json.loads(entries["meta.json"])
    meta.update(changes)
    return {**entries, "meta.json": json.dumps(meta).encode()}


BAD_CASES = {
    "truncated": (lambda e: _zip(e)[:-200], "zip"),
    "missing_image": (lambda e: _zip({k: v for k, v in e.items() if k != "quats.webp"}), "quats.webp"),
    "wrong_version": (lambda e: _zip(_with_meta(e, version=1)), "version 1"),
    "count_exceeds_images": (lambda e: _zip(_with_meta(e, count=4_000_000)), "cannot hold"),
    "count_over_limit": (lambda e: _zip(_with_meta(e, count=1 << 40)), "over the"),
    "image_too_large_for_count": (lambda e: _zip({**e, "scales.webp": _webp(1024, 1024)}), "cannot hold"),
    "not_webp": (lambda e: _zip({**e, "sh0.webp": b"RIFF\0\0\0\0garbage" * 4}), "sh0.webp"),
    "meta_not_json": (lambda e: _zip({**e, "meta.json": b"{not json"}), "not valid JSON"),
    "path_in_name": (lambda e: _zip(_with_meta(e, quats={"files": ["../quats.webp"]})), "plain file names"),
    "short_codebook": (lambda e: _zip(_with_meta(e, scales={"codebook": [0.0] * 10, "files": ["scales.webp"]})), "256 finite"),
    "zip_bomb_meta": (lambda e: _zip({**e, "meta.json": b" " * (40 << 20)}, zipfile.ZIP_DEFLATED), "limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_get_a_clear_error(tmp_path, case):
    make, expected = BAD_CASES[case]
    path = tmp_path / f"{case}.sog"
    path.write_bytes(make(_good_bundle(tmp_path)))
    with pytest.raises(ValueError, match=expected) as error:
        load_gaussians(path, format="sog")
    assert str(path) in str(error.value)


def test_bad_rotation_tags_and_missing_loose_image(tmp_path):
    entries = _good_bundle(tmp_path)
    folder = tmp_path / "loose"
    folder.mkdir()
    for name, data in entries.items():
        (folder / name).write_bytes(data)
    (folder / "sh0.webp").unlink()
    with pytest.raises(ValueError, match="sh0.webp.*missing") as error:
        load_gaussians(folder / "meta.json")
    assert str(folder / "meta.json") in str(error.value)
    (folder / "sh0.webp").write_bytes(entries["sh0.webp"])
    (folder / "quats.webp").write_bytes(_webp(16, 16))  # alpha 255 is fine, but rebuild with tag 0
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (128, 128, 128, 7)).save(buffer, format="WEBP", lossless=True, exact=True)
    (folder / "quats.webp").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="rotation tags"):
        load_gaussians(folder / "meta.json")


@pytest.mark.parametrize("target", ["scene.sog", "meta.json"])
def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch, target):
    scene = sharp_like_scene(width=16, height=16, layers=1)
    calls = []

    def failing(rgba, quality, method):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("encoder failed")
        return real(rgba, quality, method)

    real = sog._webp
    monkeypatch.setattr(sog, "_webp", failing)
    with pytest.raises(RuntimeError, match="encoder failed"):
        save_gaussians(scene, tmp_path / target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(sog, "_webp", real)
    save_gaussians(scene, tmp_path / target)
    assert (tmp_path / target).exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
