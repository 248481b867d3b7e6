"""antimatter15 .splat: round trip inside the module docstring's bounds, the size x opacity order, sniffing
without a header, splat-transform reads our files as we do and we read its files, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from format_scenes import rotation_angle, sharp_like_scene, with_sh
from sharp_core import load_gaussians, save_gaussians, save_ply
from sharp_core.color import linear_to_srgb
from sharp_core.formats.splat import SPLAT_RECORD, load_splat, save_splat
from third_party_readers import assert_stats_match, scene_stats, splat_transform  # noqa: F401

EPS = 1e-6
TINY = float(np.finfo(np.float32).tiny)


def file_order(scene) -> torch.Tensor:
    """The order our writer puts the splats in: size x opacity descending, stable."""
    weight = scene.scales[0].double().clamp(min=TINY).prod(dim=-1) * scene.opacities[0].double()
    return torch.from_numpy(np.argsort(-weight.numpy(), kind="stable"))


def assert_splat_bounds(original, back, what: str, color_bound=1 / 510, rotation_bound=0.025, clamp_opacity=True,
                        scale_rtol=0.0):
    o, b = original.to(dtype=torch.float64), back.to(dtype=torch.float64)
    assert b.num_gaussians == o.num_gaussians, what
    torch.testing.assert_close(b.means, o.means, atol=0, rtol=0, msg=f"{what}: positions")
    torch.testing.assert_close(b.scales, o.scales.clamp(min=TINY), atol=0, rtol=scale_rtol, msg=f"{what}: scales")
    srgb_error = (linear_to_srgb(b.colors) - linear_to_srgb(o.colors)).abs()
    assert (srgb_error <= color_bound + EPS).all(), f"{what}: colour (max {float(srgb_error.max()):.3g})"
    opacity = o.opacities[0]
    edge = ((opacity < 1 / 255) | (opacity > 254 / 255)) if clamp_opacity else torch.zeros_like(opacity, dtype=torch.bool)
    bound = torch.where(edge, 1 / 255, 1 / 510) if clamp_opacity else torch.full_like(opacity, 1 / 255)
    assert ((b.opacities[0] - opacity).abs() <= bound + EPS).all(), f"{what}: opacity"
    angle = rotation_angle(b.quats[0], o.quats[0])
    assert (angle <= rotation_bound).all(), f"{what}: rotation angle up to {float(angle.max()):.3g} rad"


def test_round_trip_within_bounds_in_size_times_opacity_order(tmp_path):
    scene = with_sh(sharp_like_scene(), k=3)  # opacity 0 / 1, a zero scale; SH is dropped
    scene.quats[0, 10] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    scene.quats[0, 11] = torch.tensor([0.0, 0.0, -1.0, 0.0])  # a component at -1 and one clipping at +1
    scene.quats[0, 12] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    path = save_gaussians(scene, tmp_path / "scene.splat")
    assert path.stat().st_size == 32 * scene.num_gaussians  # no header
    records = np.fromfile(path, dtype=SPLAT_RECORD)
    # which scene splat each record is (positions are unique), and their size x opacity in file order
    index = {tuple(p): i for i, p in enumerate(scene.means[0].numpy().tolist())}
    in_file = [index[tuple(p)] for p in records["position"].tolist()]
    assert sorted(in_file) == list(range(scene.num_gaussians))
    weight = (scene.scales[0].double().clamp(min=TINY).prod(dim=-1) * scene.opacities[0].double())[in_file]
    assert (weight[1:] <= weight[:-1]).all()  # descending
    assert np.isfinite(np.log(records["scale"])).all()  # the zero scale stored finite for log-taking readers
    assert set(records["rgba"][:4, 3].tolist()) <= set(range(1, 255))
    order = file_order(scene)
    back = load_gaussians(path)
    assert back.sh_rest is None and back.focal_px == [512.0]
    in_file_order = scene.select(order)
    assert_splat_bounds(in_file_order, back, "round trip")
    where = {int(i): k for k, i in enumerate(order)}
    assert back.quats[0, where[10]].tolist() == [1.0, 0.0, 0.0, 0.0]  # the identity is exact


def test_sniffed_without_the_extension_and_not_mistaken_for_others(tmp_path):
    scene = sharp_like_scene(width=8, height=8, layers=1)
    data = save_splat(scene, tmp_path / "a.splat").read_bytes()
    renamed = tmp_path / "scene.bin"
    renamed.write_bytes(data)
    assert load_gaussians(renamed).num_gaussians == 64
    ply = save_ply(scene, tmp_path / "s.ply").read_bytes()
    for name, payload in (("ply_as.bin", ply + bytes(-len(ply) % 32)), ("noise.bin", np.full(64, np.nan, "<f4").tobytes())):
        path = tmp_path / name
        path.write_bytes(payload)
        if name.startswith("ply"):
            assert load_gaussians(path).focal_px == pytest.approx(scene.focal_px)  # read as the PLY it is
        else:
            with pytest.raises(ValueError, match="unknown splat file type"):
                load_gaussians(path)


def test_empty_scene(tmp_path):
    scene = sharp_like_scene(width=4, height=4, layers=1)
    empty = scene.select(torch.zeros(scene.num_gaussians, dtype=torch.bool))
    path = save_gaussians(empty, tmp_path / "empty.splat")
    assert path.stat().st_size == 0 and load_gaussians(path).num_gaussians == 0


# -- the independent reader ------------------------------------------------------------------------


def test_splat_transform_reads_our_splat(tmp_path, splat_transform):
    scene = sharp_like_scene(seed=12)
    path = save_gaussians(scene, tmp_path / "ours.splat")
    stats = splat_transform.stats(path)
    signed = scene.to(dtype=torch.float64)
    signed.quats = signed.quats * torch.where(signed.quats[..., :1] < 0, -1.0, 1.0)  # we write w >= 0
    signed.scales = signed.scales.clamp(min=TINY)
    tolerance = {"position": EPS, "rotation": 1 / 128, "scale": EPS, "opacity": 1 / 255 + EPS, "color": 1 / 510 + EPS}
    assert_stats_match(stats, scene_stats(signed), tolerance, "splat-transform reading our .splat")
    # splat by splat (same order): its decoding is ours, up to its u8 -> [-1, 1] rotation mapping
    theirs = load_gaussians(splat_transform.convert(path, tmp_path / "theirs.ply"))
    ours = load_splat(path)
    torch.testing.assert_close(theirs.means, ours.means, atol=0, rtol=0)
    torch.testing.assert_close(theirs.scales, ours.scales, atol=0, rtol=1e-5)
    torch.testing.assert_close(theirs.opacities, ours.opacities, atol=1e-5, rtol=0)
    torch.testing.assert_close(linear_to_srgb(theirs.colors), linear_to_srgb(ours.colors), atol=1e-5, rtol=0)
    assert (rotation_angle(theirs.quats[0], ours.quats[0]) <= 0.02).all()


def test_we_read_splat_transforms_splat(tmp_path, splat_transform):
    scene = sharp_like_scene(seed=13, edge_values=False)
    theirs = splat_transform.convert(save_ply(scene, tmp_path / "scene.ply"), tmp_path / "theirs.splat")
    back = load_gaussians(theirs)  # it keeps the PLY's order and truncates its bytes
    assert_splat_bounds(scene, back, "splat-transform's .splat", color_bound=1 / 255, rotation_bound=0.05,
                        clamp_opacity=False, scale_rtol=1e-6)  # its scales went through log / exp


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case, message", [
    ("truncated", "not a multiple of the 32-byte record"),
    ("nan", "NaN or infinite"),
    ("negative_scale", "scales must be >= 0"),
])
def test_bad_files_get_a_clear_error(tmp_path, case, message):
    good = save_splat(sharp_like_scene(width=8, height=8, layers=1, edge_values=False), tmp_path / "g.splat").read_bytes()
    records = np.frombuffer(good, dtype=SPLAT_RECORD).copy()
    if case == "truncated":
        data = good[:-7]
    elif case == "nan":
        records["position"][5, 1] = np.nan
        data = records.tobytes()
    else:
        records["scale"][3, 2] = -0.5
        data = records.tobytes()
    path = tmp_path / f"{case}.splat"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as error:
        load_gaussians(path)
    assert str(path) in str(error.value)
