"""Plain 3DGS PLY ("ply"): round trip inside the stated bounds with SH bands, f_rest channel-major as
trained-3DGS tools write it (built here with plyfile, independently of our writer), splat-transform
reads our files as we do and we read its files, bad files and interrupted writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from format_scenes import rotation_angle, sharp_like_scene, with_sh
from sharp_core import load_gaussians, load_ply, save_gaussians, save_ply
from sharp_core.formats import format_for_path
from sharp_core.formats.ply_3dgs import save_3dgs_ply
from third_party_readers import assert_stats_match, scene_stats, splat_transform  # noqa: F401

C0 = 0.28209479177387814


def assert_ply_bounds(original, back, what: str) -> None:
    """The module docstring's bounds: float32 exact for positions and SH, quaternions within 3e-7; scales
    relative 1.2e-7 (1 + |ln s|), opacity 1e-6 (inside the logit clamp), 1e-5 for linear colour."""
    assert back.num_gaussians == original.num_gaussians, what
    torch.testing.assert_close(back.means, original.means, atol=0, rtol=0, msg=f"{what}: positions")
    assert (rotation_angle(back.quats[0], original.quats[0]) <= 1e-6).all(), f"{what}: rotations"
    torch.testing.assert_close(back.quats, original.quats, atol=3e-7, rtol=0, msg=f"{what}: quaternions")
    scale = original.scales.clamp(min=float(np.finfo(np.float32).tiny))
    relative = (back.scales.double() - scale.double()).abs() / scale.double()
    assert (relative <= 1.2e-7 * (1 + scale.double().log().abs())).all(), f"{what}: scales"
    opacity = original.opacities.clamp(2**-24, 1 - 2**-24)
    torch.testing.assert_close(back.opacities, opacity, atol=1e-6, rtol=0, msg=f"{what}: opacities")
    torch.testing.assert_close(back.colors, original.colors, atol=1e-5, rtol=0, msg=f"{what}: colours")
    if original.sh_rest is None:
        assert back.sh_rest is None, what
    else:
        torch.testing.assert_close(back.sh_rest, original.sh_rest, atol=0, rtol=0, msg=f"{what}: SH")


@pytest.mark.parametrize("k", [0, 3, 8, 15])
def test_round_trip_keeps_sh_bands_and_camera(tmp_path, k):
    scene = sharp_like_scene()  # opacity 0 / 1 and a zero scale included
    if k:
        scene = with_sh(scene, k=k, spread=2.0)
    path = save_gaussians(scene, tmp_path / "scene.ply", format="ply")
    header = path.read_bytes().split(b"end_header\n", 1)[0].decode()
    assert "element vertex 3072" in header and header.count("element ") == 1  # no SHARP elements
    names = [line.split()[-1] for line in header.splitlines() if line.startswith("property")]
    assert names == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
                     *(f"f_rest_{i}" for i in range(3 * k)),
                     "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.frombuffer(path.read_bytes()[len(header) + len("end_header\n"):], dtype="<f4")
    assert np.isfinite(data).all()  # opacity 0 / 1 and the zero scale stored finite
    back = load_gaussians(path)
    assert back.focal_px == pytest.approx(scene.focal_px) and back.image_size == scene.image_size
    assert_ply_bounds(scene, back, f"degree-{k} round trip")


def test_without_normals_and_on_any_device_dtype(tmp_path):
    scene = with_sh(sharp_like_scene(width=8, height=8, layers=1), k=3)
    path = save_3dgs_ply(scene.to(dtype=torch.float64), tmp_path / "plain.ply", normals=False)
    assert b"property float nx" not in path.read_bytes()[:2000]
    assert_ply_bounds(scene, load_ply(path), "without normals")


def test_f_rest_is_channel_major_as_trained_3dgs_files_store_it(tmp_path):
    """An INRIA-style file made with plyfile: f_rest[c * K + k] is coefficient k of channel c."""
    n, k = 5, 15
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(45)),
             "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rows = np.zeros(n, dtype=[(name, "<f4") for name in names])
    rows["rot_0"] = 1.0
    rows["z"] = 2.0
    for i in range(45):
        rows[f"f_rest_{i}"] = np.arange(n) * 100 + i  # value = 100 * splat + file index
    path = tmp_path / "inria.ply"
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(path))
    rest = load_gaussians(path).sh_rest[0]
    assert rest.shape == (n, k, 3)
    for c in range(3):
        for j in range(k):
            assert rest[:, j, c].tolist() == [100.0 * s + c * k + j for s in range(n)]
    # our writer puts them back at the same places
    again = save_gaussians(load_gaussians(path), tmp_path / "again.ply", format="ply")
    v = PlyData.read(str(again))["vertex"].data
    assert all(np.array_equal(v[f"f_rest_{i}"], rows[f"f_rest_{i}"]) for i in range(45))


def test_degree_four_keeps_three_bands_and_partial_sets_are_ignored(tmp_path):
    base = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    for count, expected_k in ((72, 15), (10, 3), (2, None)):
        rows = np.zeros(3, dtype=[(name, "<f4") for name in base + [f"f_rest_{i}" for i in range(count)]])
        rows["rot_0"] = 1.0
        for i in range(count):
            rows[f"f_rest_{i}"] = i
        path = tmp_path / f"rest{count}.ply"
        PlyData([PlyElement.describe(rows, "vertex")]).write(str(path))
        rest = load_gaussians(path).sh_rest
        if expected_k is None:
            assert rest is None
        else:
            per_channel = count // 3
            assert rest.shape[2] == expected_k
            assert rest[0, 0, :, 1].tolist() == [float(per_channel + j) for j in range(expected_k)]  # green


def test_names_pick_the_formats():
    assert format_for_path("x.ply").name == "sharp-ply"  # ".ply" still means SHARP's PLY when saving
    assert format_for_path("x.compressed.ply").name == "compressed-ply"
    assert format_for_path("x.spz").name == "spz" and format_for_path("x.SPLAT").name == "splat"


def test_sharp_ply_bytes_unchanged_and_reader_reads_both(tmp_path):
    scene = sharp_like_scene(width=8, height=8, layers=1)
    sharp = save_gaussians(scene, tmp_path / "sharp.ply")  # default: SHARP's layout
    assert sharp.read_bytes() == save_ply(scene, tmp_path / "direct.ply").read_bytes()
    plain = save_gaussians(scene, tmp_path / "plain.ply", format="ply")
    a, b = load_gaussians(sharp), load_gaussians(plain)
    torch.testing.assert_close(a.means, b.means)
    torch.testing.assert_close(a.colors, b.colors)
    assert a.focal_px == pytest.approx(b.focal_px) and a.image_size == b.image_size


# -- the independent reader ------------------------------------------------------------------------


def test_splat_transform_reads_our_plain_ply(tmp_path, splat_transform):
    scene = with_sh(sharp_like_scene(seed=3), k=15)
    path = save_gaussians(scene, tmp_path / "ours.ply", format="ply")
    stats = splat_transform.stats(path)
    assert stats.shBands == 3, stats.shBands
    tolerance = {"position": 1e-6, "rotation": 1e-6, "scale": 1e-6, "opacity": 1e-6, "color": 1e-5}
    assert_stats_match(stats, scene_stats(scene), tolerance, "splat-transform reading our plain PLY")
    # splat by splat through its own PLY writer: same order, same values, SH at the same places
    theirs = load_gaussians(splat_transform.convert(path, tmp_path / "theirs.ply"))
    assert_ply_bounds(scene, theirs_with_camera(theirs, scene), "splat-transform's PLY of our plain PLY")


def theirs_with_camera(theirs, scene):
    """splat-transform drops our header comments: give its scene ours to compare the rest."""
    theirs.focal_px, theirs.image_size = list(scene.focal_px), list(scene.image_size)
    return theirs


def test_we_read_splat_transforms_ply_of_our_sharp_ply(tmp_path, splat_transform):
    scene = sharp_like_scene(seed=4)
    theirs = splat_transform.convert(save_ply(scene, tmp_path / "scene.ply"), tmp_path / "theirs.ply")
    back = load_gaussians(theirs)
    assert_ply_bounds(scene, back, "splat-transform's PLY")


# -- bad input and interrupted writes --------------------------------------------------------------


def _good(tmp_path) -> bytes:
    scene = with_sh(sharp_like_scene(width=16, height=16, layers=1), k=3)
    return save_gaussians(scene, tmp_path / "good.ply", format="ply").read_bytes()


@pytest.mark.parametrize("case, message", [
    ("truncated", "truncated PLY"),
    ("wrong_magic", "not a PLY"),
    ("too_many_splats", "truncated PLY"),
    ("nan_sh", "f_rest_.*NaN"),
])
def test_bad_files_get_a_clear_error(tmp_path, case, message):
    good = _good(tmp_path)
    header, body = good.split(b"end_header\n", 1)
    if case == "truncated":
        data = good[:-50]
    elif case == "wrong_magic":
        data = b"plx" + good[3:]
    elif case == "too_many_splats":
        data = header.replace(b"element vertex 256", b"element vertex 4000000000") + b"end_header\n" + body
    else:
        rows = np.frombuffer(body, dtype="<f4").reshape(256, -1).copy()
        rows[7, 9 + 4] = np.nan  # f_rest_4 of splat 7
        data = header + b"end_header\n" + rows.tobytes()
    path = tmp_path / f"{case}.ply"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as error:
        load_gaussians(path, format="ply")
    assert str(path) in str(error.value)
