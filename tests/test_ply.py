"""PLY export/import: SHARP's exact layout, reference parity, generic 3DGS files, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement
from safetensors.torch import load_file

import sharp_core.formats.ply as ply
from sharp_core import atomic, color
from sharp_core.gaussians import Gaussians
from sharp_core.formats.ply import load_ply, save_ply

TINY = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "sharp-tiny"
REFERENCE_PLY = TINY / "reference_subset.ply"
REFERENCE_LOADED = TINY / "reference_subset_loaded.safetensors"
VERTEX = ply._VERTEX_PROPERTIES
C0 = math.sqrt(1 / (4 * math.pi))


def _random_gaussians(n: int = 500, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    quats = torch.randn(n, 4, generator=g)
    quats = quats / quats.norm(dim=-1, keepdim=True)
    quats = quats * torch.where(quats[:, :1] < 0, -1.0, 1.0)
    means = torch.randn(n, 3, generator=g)
    means[:, 2] = means[:, 2].abs() + 0.5
    opacities = torch.rand(n, generator=g)
    opacities[:3] = torch.tensor([0.0, 1.0, 0.5])
    return Gaussians(
        means=means,
        scales=torch.empty(n, 3).uniform_(-7, 0, generator=g).exp(),
        quats=quats,
        colors=torch.rand(n, 3, generator=g),
        opacities=opacities,
        focal_px=[700.5],
        image_size=[(640, 427)],
    )


def _split_ply(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end], data[end:]


def _assert_same_gaussians(a: Gaussians, b: Gaussians, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    for name in ("means", "scales", "quats", "colors", "opacities"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=atol, rtol=rtol, msg=name)


# -- round trip ---------------------------------------------------------------------------------


def test_round_trip_preserves_gaussians(tmp_path):
    g = _random_gaussians()
    out = save_ply(g, tmp_path / "scene.ply")
    assert out == tmp_path / "scene.ply"
    back = load_ply(out)
    assert back.batch_size == 1 and back.num_gaussians == g.num_gaussians
    assert back.focal_px == pytest.approx([700.5]) and back.image_size == [(640, 427)]
    # float32 storage of log/logit/sRGB-SH costs a few ulps; colours go linear -> sRGB -> linear.
    _assert_same_gaussians(back, g, atol=2e-6, rtol=2e-6)
    # Opacity 0 and 1 are clamped to [2^-24, 1 - 2^-24]: finite in the file, within 1e-7 back.
    header, body = _split_ply(out)
    vertex = np.frombuffer(body[: g.num_gaussians * 56], "<f4").reshape(-1, 14)
    assert np.isfinite(vertex).all()
    assert abs(vertex[0, 6]) == pytest.approx(16.6355, abs=1e-3)
    assert back.opacities[0, :2].tolist() == pytest.approx([0.0, 1.0], abs=1e-7)


def test_round_trip_from_other_dtype_and_zero_scale(tmp_path):
    g = _random_gaussians(50).to(dtype=torch.float64)
    g.scales[0, 0] = 0.0
    back = load_ply(save_ply(g, tmp_path / "d.ply"))
    assert back.dtype == torch.float32
    assert torch.isfinite(back.scales).all() and back.scales[0, 0, 0] < 1e-37
    torch.testing.assert_close(back.means, g.means.float())


def test_writer_header_and_metadata_are_sharp_layout(tmp_path):
    g = _random_gaussians(1000)
    header, body = _split_ply(save_ply(g, tmp_path / "s.ply"))
    lines = header.decode().splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 1000"]
    assert lines[3:17] == [f"property float {p}" for p in VERTEX]
    assert len(body) == 1000 * 56 + 16 * 4 + 9 * 4 + 2 * 4 + 2 * 4 + 2 * 4 + 1 + 3
    tail = body[1000 * 56 :]
    np.testing.assert_array_equal(np.frombuffer(tail[:64], "<f4"), np.eye(4, dtype=np.float32).ravel())
    np.testing.assert_allclose(np.frombuffer(tail[64:100], "<f4"), [700.5, 0, 320, 0, 700.5, 213.5, 0, 0, 1])
    assert np.frombuffer(tail[100:108], "<u4").tolist() == [640, 427]
    assert np.frombuffer(tail[108:116], "<i4").tolist() == [1, 1000]
    expected = torch.quantile(1 / g.means[0, :, 2], torch.tensor([0.1, 0.9]))
    np.testing.assert_allclose(np.frombuffer(tail[116:124], "<f4"), expected.numpy(), rtol=1e-6)
    assert list(tail[124:]) == [0, 1, 5, 0]
    vertex = np.frombuffer(body[: 1000 * 56], "<f4").reshape(-1, 14)
    srgb = color.linear_to_srgb(g.colors[0]).numpy()
    np.testing.assert_allclose(vertex[:, 3:6], (srgb - 0.5) / C0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vertex[:, 7:10], np.log(g.scales[0].numpy()), rtol=1e-6, atol=1e-6)


def test_disparity_quantiles_match_torch_quantile():
    z = np.random.default_rng(0).uniform(0.3, 40.0, 10007).astype(np.float32)
    ours = ply._disparity_quantiles(z, (0.1, 0.9))
    theirs = torch.quantile(torch.from_numpy(1 / z), torch.tensor([0.1, 0.9])).tolist()
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ply._disparity_quantiles(np.zeros(0, np.float32), (0.1, 0.9)) == [0.0, 0.0]


# -- reference parity ---------------------------------------------------------------------------


def test_reads_reference_file_like_the_reference_reader():
    g = load_ply(REFERENCE_PLY)
    ref = load_file(str(REFERENCE_LOADED))
    assert g.num_gaussians == 19339
    assert g.focal_px == pytest.approx([173.34381103515625]) and g.image_size == [(200, 150)]
    # Same stored floats, same formulas: exact except the sRGB decode (a few float32 ulps, our
    # own pow-based curve) and our normalising of quaternions stored with ~6e-8 norm error.
    torch.testing.assert_close(g.means[0], ref["mean_vectors"], rtol=0, atol=0)
    torch.testing.assert_close(g.scales[0], ref["singular_values"], rtol=0, atol=0)
    torch.testing.assert_close(g.opacities[0], ref["opacities"], rtol=0, atol=0)
    torch.testing.assert_close(g.colors[0], ref["colors"], rtol=1e-5, atol=1e-6)
    ref_quats = ref["quaternions"] / ref["quaternions"].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(g.quats[0], ref_quats, rtol=0, atol=2e-7)


def test_writer_reproduces_reference_file(tmp_path):
    ref = load_file(str(REFERENCE_LOADED))
    ref_header, ref_body = _split_ply(REFERENCE_PLY)
    n = ref["mean_vectors"].shape[0]
    intrinsic = np.frombuffer(ref_body[n * 56 + 64 : n * 56 + 100], "<f4")
    size = np.frombuffer(ref_body[n * 56 + 100 : n * 56 + 108], "<u4")
    g = Gaussians(
        means=ref["mean_vectors"], scales=ref["singular_values"], quats=ref["quaternions"],
        colors=ref["colors"], opacities=ref["opacities"],
        focal_px=[float(intrinsic[0])], image_size=[(int(size[0]), int(size[1]))],
    )
    header, body = _split_ply(save_ply(g, tmp_path / "ours.ply"))
    assert header == ref_header  # same elements, properties, types and order, byte for byte
    ours = np.frombuffer(body[: n * 56], "<f4").reshape(n, 14)
    theirs = np.frombuffer(ref_body[: n * 56], "<f4").reshape(n, 14)
    np.testing.assert_array_equal(ours[:, 0:3], theirs[:, 0:3])  # means
    np.testing.assert_array_equal(ours[:, 10:14], theirs[:, 10:14])  # quats
    # log scales: exp (reference reader) then log (ours) in float32 is within one ulp.
    np.testing.assert_allclose(ours[:, 7:10], theirs[:, 7:10], rtol=2.4e-7, atol=0)
    # f_dc: sRGB -> linear (reference) -> sRGB (ours) costs a few ulps of the stored value.
    np.testing.assert_allclose(ours[:, 3:6], theirs[:, 3:6], rtol=0, atol=5e-7)
    # opacity logits: sigmoid then logit in float32; |d logit / d o| = 1 / (o (1 - o)) turns one
    # ulp of o (6e-8) into at most a few 1e-7 for these opacities.
    np.testing.assert_allclose(ours[:, 6], theirs[:, 6], rtol=0, atol=5e-7)
    assert body[n * 56 :] == ref_body[n * 56 :]  # extrinsic .. version, disparity included


# -- generic 3DGS files -------------------------------------------------------------------------


def _generic_vertex(g: Gaussians, dtype: str = "f4", extras: bool = True, order=None) -> np.ndarray:
    """A 3DGS-trainer-style vertex array for `g` (sRGB colours as SH, logit, log scales)."""
    columns = {
        "x": g.means[0, :, 0], "y": g.means[0, :, 1], "z": g.means[0, :, 2],
        "opacity": torch.logit(g.opacities[0].clamp(1e-6, 1 - 1e-6)),
    }
    sh = (color.linear_to_srgb(g.colors[0]) - 0.5) / C0
    for i in range(3):
        columns[f"f_dc_{i}"] = sh[:, i]
        columns[f"scale_{i}"] = g.scales[0, :, i].log()
    for i in range(4):
        columns[f"rot_{i}"] = g.quats[0, :, i] * 3.0  # trainers store unnormalised quaternions
    if extras:
        for name in ("nx", "ny", "nz"):
            columns[name] = torch.zeros(g.num_gaussians)
        for i in range(45):
            columns[f"f_rest_{i}"] = torch.full((g.num_gaussians,), 0.25)
    names = order or list(columns)
    out = np.empty(g.num_gaussians, dtype=[(name, dtype) for name in names])
    for name in names:
        out[name] = columns[name].double().numpy()
    return out


@pytest.mark.parametrize(
    "variant",
    ["extras", "ascii", "big_endian", "double", "shuffled", "bare_little_endian"],
)
def test_reads_generic_3dgs_files(tmp_path, variant):
    g = _random_gaussians(300, seed=4)
    g.opacities.clamp_(1e-6, 1 - 1e-6)
    dtype = "f8" if variant == "double" else "f4"
    order = None
    if variant == "shuffled":
        order = list(np.random.default_rng(1).permutation(list(VERTEX) + ["nx", "ny", "nz"]))
    vertex = _generic_vertex(g, dtype=dtype, extras=variant != "bare_little_endian", order=order)
    byte_order = ">" if variant == "big_endian" else "<"
    path = tmp_path / f"{variant}.ply"
    PlyData([PlyElement.describe(vertex, "vertex")], text=variant == "ascii", byte_order=byte_order).write(
        str(path)
    )
    back = load_ply(path)
    # No SHARP elements: reference defaults, colours treated as sRGB and decoded to linear.
    assert back.focal_px == [512.0] and back.image_size == [(640, 480)]
    tol = 3e-5 if variant == "ascii" else 2e-6  # plyfile's ASCII keeps ~8 significant digits
    _assert_same_gaussians(back, g, atol=tol, rtol=tol)


def test_reads_legacy_and_partial_metadata(tmp_path):
    g = _random_gaussians(20)
    vertex = _generic_vertex(g, extras=False)

    def write(name, *elements):
        path = tmp_path / name
        extra = [PlyElement.describe(np.array(v, dtype=[(n, t)]), n) for n, t, v in elements]
        PlyData([PlyElement.describe(vertex, "vertex"), *extra]).write(str(path))
        return load_ply(path)

    legacy = write("legacy.ply", ("intrinsic", "f4", [300.0, 301.0, 800.0, 600.0]),
                   ("extrinsic", "f4", np.eye(4)[:3].ravel()))
    assert legacy.focal_px == [300.0] and legacy.image_size == [(800, 600)]
    no_size = write("nosize.ply", ("intrinsic", "f4", [250.0, 0, 160, 0, 250.0, 120, 0, 0, 1]))
    assert no_size.focal_px == [250.0] and no_size.image_size == [(320, 240)]
    linear = write("linear.ply", ("color_space", "u1", [1]))
    srgb_as_stored = (_generic_vertex(g, extras=False)["f_dc_0"] * C0 + 0.5).astype(np.float32)
    np.testing.assert_allclose(linear.colors[0, :, 0].numpy(), srgb_as_stored, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="intrinsic.*5 values"):
        write("bad_intrinsic.ply", ("intrinsic", "f4", [1.0, 2, 3, 4, 5]))
    with pytest.raises(ValueError, match="extrinsic.*7 values"):
        write("bad_extrinsic.ply", ("extrinsic", "f4", [1.0] * 7))


# -- bad input ----------------------------------------------------------------------------------


def test_rejects_files_that_are_not_splat_plys(tmp_path):
    not_ply = tmp_path / "photo.ply"
    not_ply.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"photo\.ply.*not a PLY"):
        load_ply(not_ply)

    no_end = tmp_path / "noend.ply"
    no_end.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n")
    with pytest.raises(ValueError, match=r"noend\.ply.*end_header"):
        load_ply(no_end)

    cloud = np.zeros(5, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1")])
    points = tmp_path / "points.ply"
    PlyData([PlyElement.describe(cloud, "vertex")]).write(str(points))
    with pytest.raises(ValueError, match=r"points\.ply.*f_dc_0.*opacity.*scale_0.*rot_3"):
        load_ply(points)

    wrong = tmp_path / "wrong.ply"
    PlyData([PlyElement.describe(_generic_vertex(_random_gaussians(4)), "splat")]).write(str(wrong))
    with pytest.raises(ValueError, match=r"wrong\.ply.*no 'vertex' element.*splat"):
        load_ply(wrong)


def test_rejects_truncated_and_nan_files(tmp_path):
    full = save_ply(_random_gaussians(100), tmp_path / "full.ply")
    data = full.read_bytes()
    cut = tmp_path / "cut.ply"
    cut.write_bytes(data[: len(data) - 200])
    with pytest.raises(ValueError, match=r"cut\.ply.*truncated"):
        load_ply(cut)

    g = _random_gaussians(10)
    path = tmp_path / "ascii_cut.ply"
    PlyData([PlyElement.describe(_generic_vertex(g), "vertex")], text=True).write(str(path))
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(ValueError, match=r"ascii_cut\.ply"):
        load_ply(path)

    vertex = _generic_vertex(g)
    vertex["y"][3] = np.nan
    nan_path = tmp_path / "nan.ply"
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(nan_path))
    with pytest.raises(ValueError, match=r"nan\.ply.*\by\b.*NaN"):
        load_ply(nan_path)


def test_writer_refuses_what_the_reader_would_refuse(tmp_path):
    g = _random_gaussians(10)
    g.means[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"save nan\.ply.*means.*NaN"):
        save_ply(g, tmp_path / "nan.ply")
    g = _random_gaussians(10)
    g.scales[0, 2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"scales"):
        save_ply(g, tmp_path / "inf.ply")
    assert list(tmp_path.iterdir()) == []


def test_infinite_scales_rejected_but_zero_scales_and_saturated_opacity_accepted(tmp_path):
    g = _random_gaussians(10)
    vertex = _generic_vertex(g)
    vertex["scale_0"][2] = -np.inf  # a zero scale, as SHARP's writer may store it
    vertex["opacity"][3] = np.inf  # a fully opaque splat
    ok = tmp_path / "ok.ply"
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(ok))
    loaded = load_ply(ok)
    assert loaded.scales[0, 2, 0] == 0 and loaded.opacities[0, 3] == 1
    vertex["scale_1"][4] = np.inf
    bad = tmp_path / "huge.ply"
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(bad))
    with pytest.raises(ValueError, match=r"huge\.ply.*scale_1.*infinite"):
        load_ply(bad)


def test_round_trip_of_an_empty_scene(tmp_path):
    """A scene with no splats (e.g. a PLY with 0 vertices) writes and reads back, keeping its camera."""
    g = _random_gaussians(n=5)
    empty = g.select(torch.zeros(5, dtype=torch.bool))
    path = save_ply(empty, tmp_path / "empty.ply")
    back = load_ply(path)
    assert back.num_gaussians == 0 and back.batch_size == 1
    assert back.image_size == empty.image_size and back.focal_px == pytest.approx(empty.focal_px)


def test_save_rejects_batches_and_leaves_nothing(tmp_path):
    g = _random_gaussians(10)
    batch = Gaussians(
        means=g.means.repeat(2, 1, 1), scales=g.scales.repeat(2, 1, 1), quats=g.quats.repeat(2, 1, 1),
        colors=g.colors.repeat(2, 1, 1), opacities=g.opacities.repeat(2, 1),
        focal_px=[500.0, 600.0], image_size=[(64, 48), (64, 48)],
    )
    with pytest.raises(ValueError, match=r"batch of 2.*gaussians\[i\]"):
        save_ply(batch, tmp_path / "batch.ply")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_folder_unchanged(tmp_path, monkeypatch):
    existing = save_ply(_random_gaussians(10), tmp_path / "scene.ply")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_open = open
    writes = []

    class FailingFile:
        """Lets the header through, then fails like a full disk while writing the vertices."""

        def __init__(self, f):
            self._f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

        def write(self, data):
            writes.append(len(data))
            if len(writes) > 1:
                raise OSError("No space left on device")
            return self._f.write(data)

    monkeypatch.setattr(atomic, "open", lambda path, mode: FailingFile(real_open(path, mode)), raising=False)
    with pytest.raises(OSError, match="No space left"):
        save_ply(_random_gaussians(20, seed=9), existing)
    monkeypatch.undo()
    assert len(writes) == 2  # the failure really happened mid-file
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no temp file left, the old scene.ply untouched


def test_splats_at_zero_depth_give_finite_disparity_metadata_and_no_warning(tmp_path):
    import warnings

    from sharp_core import Gaussians, load_ply, save_ply

    n = 8
    scene = Gaussians(means=torch.tensor([[0.0, 0.0, float(z)] for z in range(n)]), scales=torch.full((n, 3), 0.1),
                      quats=torch.tensor([[1.0, 0, 0, 0]] * n), colors=torch.full((n, 3), 0.5),
                      opacities=torch.full((n,), 0.5), focal_px=[100.0], image_size=[(64, 48)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's divide-by-zero RuntimeWarning fails the test
        save_ply(scene, tmp_path / "zero.ply")
    assert torch.allclose(load_ply(tmp_path / "zero.ply").means, scene.means)
