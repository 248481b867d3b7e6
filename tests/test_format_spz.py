"""Niantic SPZ: round trip inside the module docstring's bounds (frame RUB, SH degrees 1-3), versions 1, 2
and 4 read from files encoded here from the spec, splat-transform reads ours and we read its files (it
stores the PLY frame raw: the disagreement is asserted), and bad files get a clear error without a big
allocation."""

from __future__ import annotations

import gzip
import math
import struct
import sys
import tracemalloc
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from format_scenes import rotation_angle, sharp_like_scene, with_sh
from sharp_core import load_gaussians, save_gaussians, save_ply
from sharp_core.color import linear_to_srgb
from sharp_core.formats.ply_3dgs import save_3dgs_ply
from sharp_core.formats.spz import SH_FLIP_RDF_RUB, load_spz, save_spz
from third_party_readers import assert_stats_match, scene_stats, splat_transform  # noqa: F401

C0 = 0.28209479177387814
EPS = 1e-6


def flipped(scene):
    """The scene turned 180 degrees about x (our RDF frame <-> SPZ's RUB), SH signs included."""
    sh = None if scene.sh_rest is None else scene.sh_rest * torch.from_numpy(SH_FLIP_RDF_RUB[: scene.sh_rest.shape[2], None])
    return replace(scene, means=scene.means * torch.tensor([1.0, -1.0, -1.0]),
                   quats=scene.quats * torch.tensor([1.0, 1.0, -1.0, -1.0]), sh_rest=sh)


def assert_spz_bounds(original, back, what: str, fractional_bits: int = 12, sh_bits=(5, 4), clamp_opacity=True) -> None:
    o, b = original.to(dtype=torch.float64), back.to(dtype=torch.float64)
    assert b.num_gaussians == o.num_gaussians, what
    assert ((b.means - o.means).abs() <= 2.0 ** -(fractional_bits + 1) + EPS).all(), f"{what}: positions"
    opacity = o.opacities[0]
    edge = (opacity < 1 / 255) | (opacity > 254 / 255) if clamp_opacity else torch.zeros_like(opacity, dtype=torch.bool)
    bound = torch.where(edge, 1 / 255, 1 / 510)
    assert ((b.opacities[0] - opacity).abs() <= bound + EPS).all(), f"{what}: opacity"
    srgb_error = (linear_to_srgb(b.colors) - linear_to_srgb(o.colors)).abs()
    assert (srgb_error <= C0 / (0.15 * 510) + EPS).all(), f"{what}: colour (max {float(srgb_error.max()):.3g})"
    log_s = o.scales.clamp(min=math.exp(-10)).log()
    assert ((b.scales.log() - log_s).abs() <= 1 / 32 + EPS).all(), f"{what}: log scale"
    angle = rotation_angle(b.quats[0], o.quats[0])
    assert (angle <= 5e-3).all(), f"{what}: rotation angle up to {float(angle.max()):.3g} rad"
    if o.sh_rest is not None:
        k = o.sh_rest.shape[2]
        bits = torch.tensor([sh_bits[0]] * 3 + [sh_bits[1]] * (k - 3), dtype=torch.float64)[:k]
        bound = (0.5 + 2.0 ** (7 - bits)) / 128
        if sh_bits == (8, 8):
            bound = torch.full_like(bound, 1 / 256)
        err = (b.sh_rest - o.sh_rest.clamp(-1, 127 / 128)).abs()
        assert (err <= bound[None, None, :, None] + EPS).all(), f"{what}: SH (max {float(err.max()):.3g})"


def test_round_trip_within_quantisation_bounds(tmp_path):
    scene = with_sh(sharp_like_scene(), k=15, spread=1.2)  # opacity 0 / 1, a zero scale, SH beyond [-1, 1)
    path = save_gaussians(scene, tmp_path / "scene.spz")
    raw = gzip.decompress(path.read_bytes())
    magic, version, n, degree, bits, flags, _ = struct.unpack_from("<IIIBBBB", raw)
    assert (magic, version, n, degree, bits, flags) == (0x5053474E, 3, 3072, 3, 12, 0)
    assert len(raw) == 16 + n * (9 + 1 + 3 + 3 + 4 + 45)
    back = load_gaussians(path)
    assert back.sh_rest.shape == scene.sh_rest.shape
    assert_spz_bounds(scene, back, "round trip")
    assert back.focal_px == [512.0] and back.image_size == [(640, 480)]  # no slot for the camera
    # opacity 0 and 1 stored as 1 and 254: no reader's logit becomes infinite
    alphas = np.frombuffer(raw, np.uint8, count=n, offset=16 + 9 * n)
    assert alphas[:4].tolist() == [1, 254, 1, 254]
    renamed = tmp_path / "scene.bin"  # recognised from its bytes (gzip holding 'NGSP')
    renamed.write_bytes(path.read_bytes())
    assert load_gaussians(renamed).num_gaussians == n


@pytest.mark.parametrize("k", [3, 8])
def test_lower_sh_degrees_and_full_sh_precision(tmp_path, k):
    scene = with_sh(sharp_like_scene(width=16, height=16, layers=1, seed=5), k=k, spread=0.9)
    back = load_gaussians(save_spz(scene, tmp_path / "eight.spz", sh1_bits=8, sh_rest_bits=8))
    assert back.sh_rest.shape[2] == k
    assert_spz_bounds(scene, back, f"degree {k}, 8-bit SH", sh_bits=(8, 8))


def test_frame_is_rub_in_the_file(tmp_path):
    scene = with_sh(sharp_like_scene(width=8, height=8, layers=1, seed=6), k=3, spread=0.5)
    path = save_spz(scene, tmp_path / "rub.spz")
    raw = gzip.decompress(path.read_bytes())
    b = np.frombuffer(raw, np.uint8, count=9, offset=16).astype(np.int32).reshape(3, 3)
    fixed = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    first = ((fixed ^ 0x800000) - 0x800000) / 4096.0
    x, y, z = scene.means[0, 0].tolist()
    assert first.tolist() == pytest.approx([x, -y, -z], abs=2**-13 + EPS)  # RUB: y up, z back
    raw_read = load_spz(path, frame="rdf")  # the file's numbers as they are
    assert_spz_bounds(flipped(scene), raw_read, "raw RUB values")
    rdf = load_gaussians(save_spz(scene, tmp_path / "rdf.spz", frame="rdf"))  # stored raw, read as RUB
    assert_spz_bounds(flipped(scene), rdf, "RDF file read as RUB")


def test_sh_sign_table_is_the_turn_about_x():
    """Y_k(F d) = sign_k Y_k(d) for F = diag(1, -1, -1), with the real SH polynomials of degrees 1-3
    in 3DGS's order (constant factors do not change signs)."""
    d = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)

    def basis(v):
        x, y, z = v.unbind(-1)
        xx, yy, zz = x * x, y * y, z * z
        return torch.stack([
            -y, z, -x,
            x * y, y * z, 2 * zz - xx - yy, x * z, xx - yy,
            y * (3 * xx - yy), x * y * z, y * (4 * zz - xx - yy), z * (2 * zz - 3 * xx - 3 * yy),
            x * (4 * zz - xx - yy), z * (xx - yy), x * (xx - 3 * yy),
        ], dim=-1)

    turned = basis(d * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(turned, basis(d) * torch.from_numpy(SH_FLIP_RDF_RUB).double())


# -- older and newer versions, encoded here from the spec ----------------------------------------------


def _legacy_file(scene, version: int, bits: int = 12) -> bytes:
    """Versions 1 / 2: float16 (v1) or 24-bit positions, (x, y, z) * 127.5 + 127.5 rotations with w >= 0."""
    g = flipped(scene).to(dtype=torch.float64)
    n = g.num_gaussians
    p = g.means[0].numpy()
    if version == 1:
        positions = p.astype("<f2").tobytes()
    else:
        fixed = np.round(p * (1 << bits)).astype(np.int64) & 0xFFFFFF
        positions = np.stack([fixed & 255, (fixed >> 8) & 255, fixed >> 16], axis=-1).astype(np.uint8).tobytes()
    alphas = np.round(g.opacities[0].numpy() * 255).astype(np.uint8).tobytes()
    dc = (linear_to_srgb(g.colors[0]).numpy() - 0.5) / C0
    colors = np.clip(np.round(dc * 0.15 * 255 + 127.5), 0, 255).astype(np.uint8).tobytes()
    scales = np.clip(np.round((np.log(g.scales[0].numpy().clip(1e-30)) + 10) * 16), 0, 255).astype(np.uint8).tobytes()
    q = g.quats[0].numpy()
    q = q * np.where(q[:, :1] < 0, -1, 1)
    rotations = np.clip(np.round(q[:, 1:] * 127.5 + 127.5), 0, 255).astype(np.uint8).tobytes()
    header = struct.pack("<IIIBBBB", 0x5053474E, version, n, 0, bits, 0, 0)
    return gzip.compress(header + positions + alphas + colors + scales + rotations)


@pytest.mark.parametrize("version", [1, 2])
def test_reads_versions_1_and_2(tmp_path, version):
    scene = sharp_like_scene(width=16, height=16, layers=1, seed=7, edge_values=False)
    path = tmp_path / f"v{version}.spz"
    path.write_bytes(_legacy_file(scene, version))
    back = load_gaussians(path)
    o, b = scene.to(dtype=torch.float64), back.to(dtype=torch.float64)
    position_bound = 2**-13 if version == 2 else 2**-11 * 4  # float16: 11 bits of 4 m
    assert ((b.means - o.means).abs() <= position_bound + EPS).all()
    assert ((b.opacities - o.opacities).abs() <= 1 / 510 + EPS).all()
    # 8-bit x, y, z with w rebuilt (w >= 0): decoded here from the spec, then turned back to RDF
    q = flipped(scene).quats[0].double()
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
    xyz = torch.round(q[:, 1:] * 127.5 + 127.5).clamp(0, 255) / 127.5 - 1
    expected = torch.cat([(1 - (xyz * xyz).sum(-1, keepdim=True)).clamp(min=0).sqrt(), xyz], dim=-1)
    expected = expected * torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    assert (rotation_angle(b.quats[0], expected) <= 1e-5).all()
    sure = o.quats[0, :, 0].abs() > 0.3  # where w is not near 0, rebuilding it loses little
    assert (rotation_angle(b.quats[0], o.quats[0])[sure] <= 0.05).all()
    assert ((b.scales.log() - o.scales.log()).abs() <= 1 / 32 + EPS).all()


def _v4_file(scene, zstandard, num_streams=None, lie=None) -> bytes:
    """Version 4: plain 32-byte header, table of sizes, one zstd stream per attribute (from our v3 bytes)."""
    import io
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        raw = gzip.decompress(save_spz(scene, Path(folder) / "v3.spz").read_bytes())
    n = scene.num_gaussians
    degree = raw[12]
    sizes = [9 * n, n, 3 * n, 3 * n, 4 * n, n * 3 * ((degree + 1) ** 2 - 1)]
    sizes = [s for s in sizes if s]
    parts, offset = [], 16
    for s in sizes:
        parts.append(raw[offset:offset + s])
        offset += s
    compressed = [zstandard.ZstdCompressor(level=3).compress(p) for p in parts]
    count = len(compressed) if num_streams is None else num_streams
    header = struct.pack("<IIIBBBBI12s", 0x5053474E, 4, n, degree, raw[13], 0, count, 32, bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), (lie if lie and i == 0 else len(p)))
                   for i, (c, p) in enumerate(zip(compressed, parts)))
    out = io.BytesIO()
    out.write(header + toc + b"".join(compressed))
    return out.getvalue()


def test_reads_version_4_with_zstandard(tmp_path):
    zstandard = pytest.importorskip("zstandard", reason="zstandard (optional extra 'spz4') not installed")
    scene = with_sh(sharp_like_scene(seed=8), k=8, spread=0.5)
    path = tmp_path / "v4.spz"
    path.write_bytes(_v4_file(scene, zstandard))
    assert_spz_bounds(scene, load_gaussians(path), "version 4")


def test_version_4_without_zstandard_names_the_fix(tmp_path, monkeypatch):
    header = struct.pack("<IIIBBBBI12s", 0x5053474E, 4, 1, 0, 12, 0, 5, 32, bytes(12))
    path = tmp_path / "v4.spz"
    path.write_bytes(header + bytes(5 * 16) + bytes(64))
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails as if not installed
    with pytest.raises(ValueError, match=r"zstd-compressed .*pip install zstandard") as error:
        load_gaussians(path)
    assert str(path) in str(error.value)


# -- the independent reader ------------------------------------------------------------------------


def test_splat_transform_reads_our_spz(tmp_path, splat_transform):
    """splat-transform decodes SPZ raw (no RUB -> PLY turn), so it sees our scene turned about x:
    the disagreement, asserted. Count, SH bands and every other statistic match within the bounds."""
    scene = with_sh(sharp_like_scene(seed=9), k=15, spread=0.5)
    path = save_gaussians(scene, tmp_path / "ours.spz")
    stats = splat_transform.stats(path)
    assert stats.shBands == 3
    tolerance = {"position": 2**-13 + EPS, "rotation": 5e-3, "scale": 0.05, "opacity": 1 / 255 + EPS,
                 "color": C0 / (0.15 * 510) + EPS}
    rot = ("rot_0", "rot_1", "rot_2", "rot_3")  # smallest-three flips q's sign
    assert_stats_match(stats, scene_stats(flipped(scene)), tolerance, "splat-transform reading our SPZ", skip=rot)
    with pytest.raises(AssertionError, match="per-column statistics differ"):
        assert_stats_match(stats, scene_stats(scene), tolerance, "unturned", skip=rot)
    # splat by splat through its PLY writer (same order): what it decodes is what we decode, raw
    theirs = load_gaussians(splat_transform.convert(path, tmp_path / "theirs.ply"))
    ours_raw = load_spz(path, frame="rdf")
    torch.testing.assert_close(theirs.means, ours_raw.means, atol=1e-6, rtol=0)
    torch.testing.assert_close(theirs.sh_rest, ours_raw.sh_rest, atol=1e-6, rtol=0)
    assert (rotation_angle(theirs.quats[0], ours_raw.quats[0]) <= 1e-5).all()
    torch.testing.assert_close(theirs.opacities, ours_raw.opacities, atol=1e-5, rtol=0)


def test_we_read_splat_transforms_spz(tmp_path, splat_transform):
    """Its SPZ (version 4, zstd, the PLY frame raw) of our SHARP PLY and of a PLY with SH bands."""
    pytest.importorskip("zstandard", reason="zstandard (optional extra 'spz4') not installed")
    scene = sharp_like_scene(seed=10, edge_values=False)
    sh_scene = with_sh(sharp_like_scene(seed=11, edge_values=False), k=15, spread=0.5)
    plain = save_ply(scene, tmp_path / "scene.ply")
    with_bands = save_3dgs_ply(sh_scene, tmp_path / "bands.ply")
    a, b = splat_transform.convert_many([(plain, tmp_path / "a.spz"), (with_bands, tmp_path / "b.spz")])
    assert a.read_bytes()[:4] == b"NGSP" and struct.unpack_from("<I", a.read_bytes(), 4)[0] == 4
    assert_spz_bounds(scene, load_spz(a, frame="rdf"), "splat-transform's SPZ", clamp_opacity=False)
    assert_spz_bounds(sh_scene, load_spz(b, frame="rdf"), "splat-transform's SPZ with SH", clamp_opacity=False)
    assert_spz_bounds(flipped(scene), load_gaussians(a), "splat-transform's SPZ read as RUB", clamp_opacity=False)


# -- bad input -----------------------------------------------------------------------------------


def _good(tmp_path) -> bytes:
    return save_spz(sharp_like_scene(width=16, height=16, layers=1, edge_values=False), tmp_path / "good.spz").read_bytes()


def _regzip(raw: bytes) -> bytes:
    return gzip.compress(raw)


@pytest.mark.parametrize("case, message", [
    ("truncated", "truncated SPZ"),
    ("truncated_header", "truncated SPZ"),
    ("wrong_magic", "not an SPZ file"),
    ("not_gzip", "not an SPZ file"),
    ("corrupt", "corrupt SPZ|truncated SPZ"),
    ("version_9", "unsupported SPZ version 9"),
    ("version_0", "unsupported SPZ version 0"),
    ("degree_7", "SH degree 7"),
    ("too_many_splats", "cannot hold that many"),
    ("more_splats_than_data", "truncated SPZ"),
    ("v4_truncated", "truncated SPZ"),
    ("v4_version_5", "unsupported SPZ version 5"),
    ("v4_stream_count", "lists 2 streams"),
    ("v4_too_many_splats", "cannot hold that many"),
])
def test_bad_files_get_a_clear_error(tmp_path, case, message):
    good = _good(tmp_path)
    raw = gzip.decompress(good)
    patch = lambda fmt, offset, value: raw[:offset] + struct.pack(fmt, value) + raw[offset + struct.calcsize(fmt):]  # noqa: E731
    v4 = struct.pack("<IIIBBBBI12s", 0x5053474E, 4, 256, 0, 12, 0, 5, 32, bytes(12))
    data = {
        "truncated": good[: len(good) // 2],
        "truncated_header": good[:12],
        "wrong_magic": _regzip(b"XGSP" + raw[4:]),
        "not_gzip": b"\x00" * 64,
        "corrupt": good[:20] + bytes(b ^ 0x5A for b in good[20:60]) + good[60:],
        "version_9": _regzip(patch("<I", 4, 9)),
        "version_0": _regzip(patch("<I", 4, 0)),
        "degree_7": _regzip(patch("<B", 12, 7)),
        "too_many_splats": _regzip(patch("<I", 8, 4_000_000_000)),
        "more_splats_than_data": _regzip(patch("<I", 8, 300)),
        "v4_truncated": v4[:20],
        "v4_version_5": v4[:4] + struct.pack("<I", 5) + v4[8:],
        "v4_stream_count": v4[:15] + bytes([2]) + v4[16:] + bytes(64),
        "v4_too_many_splats": v4[:8] + struct.pack("<I", 4_000_000_000) + v4[12:] + bytes(5 * 16),
    }[case]
    path = tmp_path / f"{case}.spz"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message) as error:
            load_spz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(error.value)
    assert peak < 8 << 20, f"{case}: {peak:,} bytes allocated for a bad file"


def test_lying_version_4_table_is_refused(tmp_path):
    zstandard = pytest.importorskip("zstandard", reason="zstandard (optional extra 'spz4') not installed")
    scene = sharp_like_scene(width=8, height=8, layers=1, edge_values=False)
    path = tmp_path / "lie.spz"
    path.write_bytes(_v4_file(scene, zstandard, lie=10**12))
    with pytest.raises(ValueError, match="stream 0 holds"):
        load_spz(path)
    path.write_bytes(_v4_file(scene, zstandard)[:-10])
    with pytest.raises(ValueError, match="truncated SPZ|corrupt SPZ"):
        load_spz(path)


def test_gzip_bomb_inflates_only_what_the_header_promises(tmp_path):
    raw = gzip.decompress(_good(tmp_path))
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflate.compress(raw)]
    zeros = bytes(1 << 20)
    parts += [deflate.compress(zeros) for _ in range(128)]  # 128 MB of trailing zeros, ~0.6 MB compressed
    parts.append(deflate.flush())
    path = tmp_path / "bomb.spz"
    path.write_bytes(b"".join(parts))
    tracemalloc.start()
    try:
        back = load_spz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert back.num_gaussians == 256
    assert peak < 16 << 20, f"{peak:,} bytes allocated"


def test_far_splats_use_fewer_fractional_bits_and_too_far_is_refused(tmp_path):
    scene = sharp_like_scene(width=8, height=8, layers=1, edge_values=False)
    scene.means[0, 0] = torch.tensor([3000.0, -10.0, 5.0])  # beyond 2048 m: 11 fractional bits
    path = save_spz(scene, tmp_path / "far.spz")
    assert gzip.decompress(path.read_bytes())[13] == 11
    assert_spz_bounds(scene, load_spz(path), "far", fractional_bits=11)
    scene.means[0, 0, 2] = 1e7  # beyond 24-bit integers of metres
    with pytest.raises(ValueError, match="beyond SPZ's 24-bit positions"):
        save_spz(scene, tmp_path / "too_far.spz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.spz"]
