"""Reading GaussianSplats3D .ksplat files: compression levels 0-2, several sections, full and partly
filled buckets, SH degrees 0-2, against our test encoder (tests/ksplat_writer.py) with each level's
quantisation bound, and against splat-transform's own .ksplat reader; bad files give a clear error."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
import torch
from plyfile import PlyData

from ksplat_writer import encode_ksplat
from sharp_core import FORMATS, load_gaussians, save_gaussians
from sharp_core.color import SH_C0, linear_to_srgb
from sharp_core.formats.ksplat import load_ksplat
from third_party_readers import splat_transform  # noqa: F401

N = 700
SECTIONS = (300, 400)
BLOCK = 5.0
# level -> bound on |position error| (u16 offsets: half a step of (block / 2) / 32767; level 0 exact)
POSITION_BOUND = {0: 0.0, 1: BLOCK / 4 / 32767 + 1e-6, 2: BLOCK / 4 / 32767 + 1e-6}


def _splats(seed: int = 0, k: int = 8):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(N, 4)).astype(np.float32)
    return {
        "means": (rng.normal(size=(N, 3)) * 4).astype(np.float32),
        "scales": (rng.random((N, 3)) * 0.1 + 1e-3).astype(np.float32),
        "quats": q / np.linalg.norm(q, axis=1, keepdims=True),
        "srgb": rng.random((N, 3)).astype(np.float32), "opacities": rng.random(N).astype(np.float32),
        "sh_rest": None if k == 0 else (rng.normal(size=(N, k, 3)) * 0.3).astype(np.float32),
    }


def _write(tmp_path, level, k=8, name="scene.ksplat", **options):
    s = _splats(k=k)
    data, order = encode_ksplat(s["means"], s["scales"], s["quats"], s["srgb"], s["opacities"], s["sh_rest"],
                                level=level, sections=SECTIONS, block_size=BLOCK, bucket_size=64, **options)
    path = tmp_path / name
    path.write_bytes(data)
    return path, {key: None if v is None else v[order] for key, v in s.items()}


@pytest.mark.parametrize("k", [0, 3, 8])
@pytest.mark.parametrize("level", [0, 1, 2])
def test_each_level_decodes_what_was_encoded(tmp_path, level, k):
    path, s = _write(tmp_path, level, k)
    if level:  # the file exercises partly filled buckets in both sections
        raw = path.read_bytes()
        assert all(struct.unpack_from("<I", raw, 4096 + i * 1024 + 36)[0] > 0 for i in range(2))
    g = load_ksplat(path)
    assert g.num_gaussians == N and g.focal_px == [512.0] and g.image_size == [(640, 480)]
    assert np.abs(g.means[0].numpy() - s["means"]).max() <= POSITION_BOUND[level]
    half = 2.0 ** -11  # f16 relative step
    scale_err = np.abs(g.scales[0].numpy() - s["scales"]) / s["scales"]
    assert scale_err.max() <= (1e-7 if level == 0 else half)
    quat_err = np.minimum(np.abs(g.quats[0].numpy() - s["quats"]), np.abs(g.quats[0].numpy() + s["quats"])).max()
    assert quat_err <= (1e-6 if level == 0 else 2e-3)
    # colour and opacity are floored to bytes: display colour within [-1/255, 0] of the source
    srgb_err = linear_to_srgb(g.colors[0]).numpy() - s["srgb"]
    assert srgb_err.max() <= 1e-5 and srgb_err.min() >= -1 / 255 - 1e-5
    op_err = g.opacities[0].numpy() - s["opacities"]
    assert op_err.max() <= 1e-6 and op_err.min() >= -1 / 255 - 1e-6
    if k == 0:
        assert g.sh_rest is None
        return
    assert g.sh_rest.shape == (1, N, k, 3)
    sh_err = np.abs(g.sh_rest[0].numpy() - s["sh_rest"])
    if level == 0:
        assert sh_err.max() == 0
    elif level == 1:
        assert (sh_err / np.maximum(np.abs(s["sh_rest"]), 2.0 ** -14)).max() <= half
    else:  # bytes over the file's SH range
        span = float(s["sh_rest"].max() - s["sh_rest"].min())
        assert sh_err.max() <= span / 255 + 1e-6


@pytest.mark.parametrize("level", [0, 1, 2])
def test_splat_transform_reads_the_same_splats(tmp_path, splat_transform, level):
    path, _ = _write(tmp_path, level)
    ply = splat_transform.convert(path, tmp_path / "theirs.ply")
    v = PlyData.read(str(ply))["vertex"].data
    ours = load_ksplat(path)
    assert len(v) == ours.num_gaussians
    np.testing.assert_allclose(np.stack([v[c] for c in "xyz"], 1), ours.means[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.exp(np.stack([v[f"scale_{i}"] for i in range(3)], 1)), ours.scales[0].numpy(),
                               rtol=1e-5)
    rot = np.stack([v[f"rot_{i}"] for i in range(4)], 1)
    rot /= np.linalg.norm(rot, axis=1, keepdims=True)
    q = ours.quats[0].numpy()
    assert np.minimum(np.abs(rot - q).max(1), np.abs(rot + q).max(1)).max() <= 1e-6
    dc = np.stack([v[f"f_dc_{i}"] for i in range(3)], 1) * SH_C0 + 0.5
    np.testing.assert_allclose(dc, linear_to_srgb(ours.colors[0]).numpy(), atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-v["opacity"].astype(np.float64))), ours.opacities[0].numpy(), atol=1e-5)
    rest = np.stack([v[f"f_rest_{i}"] for i in range(24)], 1).reshape(-1, 3, 8).transpose(0, 2, 1)
    np.testing.assert_allclose(rest, ours.sh_rest[0].numpy(), atol=1e-6)


def test_registered_read_only_and_sniffed(tmp_path):
    path, s = _write(tmp_path, 1)
    assert FORMATS["ksplat"].write is None
    renamed = tmp_path / "scene.bin"
    renamed.write_bytes(path.read_bytes())
    g = load_gaussians(renamed)  # recognised by its header, not its name
    assert torch.equal(g.means, load_ksplat(path).means)
    with pytest.raises(ValueError, match="read but not written"):
        save_gaussians(g, tmp_path / "out.bin", format="ksplat")


def _patched(tmp_path, name, source, offset, fmt, *values):
    data = bytearray(source.read_bytes())
    struct.pack_into(fmt, data, offset, *values)
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


def test_bad_files_name_the_file_and_the_problem(tmp_path):
    path, _ = _write(tmp_path, 1)
    raw = path.read_bytes()
    short = tmp_path / "short.ksplat"
    short.write_bytes(raw[:100])
    cut = tmp_path / "cut.ksplat"
    cut.write_bytes(raw[: len(raw) - 50])
    cases = {
        short: "truncated .ksplat: the header needs 4096",
        cut: "truncated or corrupt .ksplat: section 1 claims 400 splats",
        _patched(tmp_path, "v10.ksplat", path, 0, "<2B", 1, 0): "unsupported .ksplat version 1.0",
        _patched(tmp_path, "v00.ksplat", path, 0, "<2B", 0, 0): "unsupported .ksplat version 0.0",
        _patched(tmp_path, "level.ksplat", path, 20, "<H", 7): "unknown .ksplat compression level 7",
        _patched(tmp_path, "sh3.ksplat", path, 4096 + 40, "<H", 3): "SH degree 3",
        _patched(tmp_path, "sections.ksplat", path, 4, "<I", 4_000_000): "4000000 section headers need",
        _patched(tmp_path, "buckets.ksplat", path, 4096 + 36, "<I", 1): "do not place its 300 splats",
    }
    for bad, message in cases.items():
        with pytest.raises(ValueError, match=message) as error:
            load_ksplat(bad)
        assert bad.name in str(error.value), error.value


def test_a_header_claiming_a_billion_splats_allocates_nothing_big(tmp_path):
    path, _ = _write(tmp_path, 0)
    huge = _patched(tmp_path, "huge.ksplat", path, 4096 + 4, "<I", 1_000_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="section 0 claims 1000000000 splats"):
            load_ksplat(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * huge.stat().st_size + (1 << 20), f"peak {peak} bytes for a {huge.stat().st_size}-byte file"


def test_saving_to_a_ksplat_name_says_the_format_is_read_only(tmp_path):
    from format_scenes import sharp_like_scene

    target = tmp_path / "scene.ksplat"
    with pytest.raises(ValueError, match="can be read but not written"):
        save_gaussians(sharp_like_scene(), target)
    assert list(tmp_path.iterdir()) == []
