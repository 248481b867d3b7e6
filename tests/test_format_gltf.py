"""glTF .glb with KHR_gaussian_splatting: float32 round trip (SH bands included) in the glTF frame,
the Khronos validator finds nothing but its known gap, splat-transform's .glb of our PLY (and of our
SH .sog) reads back in our frame, and bad files get a clear error."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from format_scenes import quat_error, sharp_like_scene
from sharp_core import load_gaussians, save_gaussians, save_ply
from sharp_core.glb import accessor_array, read_glb

readers = pytest.importorskip("third_party_readers", reason="tests/third_party_readers.py runs the npm tools")
gltf_validator = readers.gltf_validator
splat_transform = readers.splat_transform
PREFIX = "KHR_gaussian_splatting:"


def with_sh(scene, k: int = 15, seed: int = 5):
    scene.sh_rest = 0.3 * torch.randn(1, scene.num_gaussians, k, 3, generator=torch.Generator().manual_seed(seed))
    return scene


def assert_same_scene(a, b, what: str, sh: bool = True, opacity_atol: float = 1e-7) -> None:
    """Equal up to float32 rounding (and q ~ -q)."""
    torch.testing.assert_close(b.means, a.means, atol=1e-6, rtol=1e-6, msg=f"{what}: means")
    torch.testing.assert_close(b.scales, a.scales, atol=1e-9, rtol=1e-6, msg=f"{what}: scales")
    torch.testing.assert_close(b.opacities, a.opacities, atol=opacity_atol, rtol=0, msg=f"{what}: opacities")
    torch.testing.assert_close(b.colors, a.colors, atol=2e-6, rtol=0, msg=f"{what}: colours")
    assert (quat_error(b.quats[0], a.quats[0]) < 1e-6).all(), f"{what}: rotations"
    if sh:
        torch.testing.assert_close(b.sh_rest, a.sh_rest, atol=1e-6, rtol=1e-6, msg=f"{what}: SH")


@pytest.mark.parametrize("k", [0, 3, 15])
def test_round_trip_is_float32_exact(tmp_path, k):
    scene = sharp_like_scene()
    if k:
        with_sh(scene, k)
    back = load_gaussians(save_gaussians(scene, tmp_path / "scene.glb"))
    assert back.focal_px == pytest.approx(scene.focal_px) and back.image_size == scene.image_size
    assert_same_scene(scene, back, "glb round trip", sh=bool(k))
    if not k:
        assert back.sh_rest is None


def test_file_is_in_the_gltf_frame_with_the_spec_layout(tmp_path):
    scene = with_sh(sharp_like_scene(), 3)
    doc, blob = read_glb(save_gaussians(scene, tmp_path / "scene.glb"))
    primitive = doc["meshes"][0]["primitives"][0]
    assert primitive["mode"] == 0 and doc["extensionsUsed"] == ["KHR_gaussian_splatting"]
    assert primitive["extensions"]["KHR_gaussian_splatting"]["colorSpace"] == "srgb_rec709_display"
    attrs = primitive["attributes"]
    assert set(attrs) == {"POSITION", "COLOR_0", *(PREFIX + a for a in ("ROTATION", "SCALE", "OPACITY")),
                          *(f"{PREFIX}SH_DEGREE_{d}_COEF_{c}" for d, c in [(0, 0), (1, 0), (1, 1), (1, 2)])}
    get = lambda name: accessor_array(doc, blob, attrs[name]).copy()  # noqa: E731
    m = scene.means[0].numpy()
    np.testing.assert_array_equal(get("POSITION"), m * np.array([1, -1, -1], dtype=np.float32))  # y up, camera looks -z
    np.testing.assert_array_equal(get(PREFIX + "SCALE"), scene.scales[0].numpy())  # linear
    np.testing.assert_array_equal(get(PREFIX + "OPACITY"), scene.opacities[0].numpy())  # not a logit
    # the half turn about x: q' = (0, 1, 0, 0) * q, stored x, y, z, w
    w, x, y, z = scene.quats[0].unbind(-1)
    turned = torch.stack([w, -z, y, -x], dim=-1)  # x, y, z, w of (0, 1, 0, 0) * (w, x, y, z)
    assert (quat_error(torch.from_numpy(get(PREFIX + "ROTATION")), turned) < 1e-7).all()
    # degree-1 SH functions are y, z, x: the turn flips y and z, so the first two change sign
    sh = scene.sh_rest[0].numpy()
    for c, sign in enumerate((-1, -1, 1)):
        np.testing.assert_array_equal(get(f"{PREFIX}SH_DEGREE_1_COEF_{c}"), sign * sh[:, c])


def test_khronos_validator_finds_only_its_known_gap(tmp_path, gltf_validator):  # noqa: F811
    scene = with_sh(sharp_like_scene(), 8)
    good = save_gaussians(scene, tmp_path / "scene.glb")
    broken = tmp_path / "broken.glb"  # the check can fail: POSITION max smaller than the data
    doc, blob = read_glb(good)
    doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]["max"][0] -= 1.0
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob
    broken.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks)
    report, bad = gltf_validator([good, broken])
    assert "fatal" not in report
    errors = [m for m in report["issues"]["messages"] if m["severity"] == 0]
    # glTF-Validator 2.0.0-dev.3.10 predates extension-prefixed attribute names
    # (KhronosGroup/glTF-Validator#252): it flags each KHR_gaussian_splatting:* semantic and nothing else
    assert {m["code"] for m in errors} == {"MESH_PRIMITIVE_INVALID_ATTRIBUTE"}, errors
    flagged = {m["pointer"].rsplit("/", 1)[-1] for m in errors}
    assert all(name.startswith(PREFIX) for name in flagged) and len(flagged) == 4 + 8
    assert readers.gltf_messages(report, 1) == [], "warnings"
    assert report["info"]["totalVertexCount"] == scene.num_gaussians
    assert any("ACCESSOR_MAX_MISMATCH" in m for m in readers.gltf_messages(bad, 0)), readers.gltf_messages(bad, 0)


def test_we_read_splat_transforms_glb_of_our_ply(tmp_path, splat_transform):  # noqa: F811
    scene = sharp_like_scene(seed=2)
    theirs = splat_transform.convert(save_ply(scene, tmp_path / "scene.ply"), tmp_path / "theirs.glb")
    doc, _ = read_glb(theirs)
    assert doc["asset"]["generator"].startswith("splat-transform")
    back = load_gaussians(theirs)
    assert back.num_gaussians == scene.num_gaussians
    # their PLY reader floors opacity logits and our PLY stores +-16.6: compare at PLY precision
    assert_same_scene(load_gaussians(tmp_path / "scene.ply"), back, "splat-transform's .glb", sh=False)


def test_sh_bands_through_splat_transform(tmp_path, splat_transform):  # noqa: F811
    """Our SH .sog -> splat-transform -> .glb (their frame, their SH turn) -> ours: the same decoded
    scene, so both tools agree on frames and on how SH coefficients follow them."""
    scene = with_sh(sharp_like_scene(width=24, height=16), 15)
    sog = save_gaussians(scene, tmp_path / "sh.sog")
    theirs = splat_transform.convert(sog, tmp_path / "theirs.glb")
    # opacity passes through their logit clamped at 1e-6 (0 and 1 come back 1e-6 away)
    assert_same_scene(load_gaussians(sog), load_gaussians(theirs), "SH via splat-transform", opacity_atol=1.1e-6)


# -- bad input ------------------------------------------------------------------------------------


def _rewrite(path, out, change) -> None:
    doc, blob = read_glb(path)
    change(doc)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob
    out.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks)


def _attrs(doc):
    return doc["meshes"][0]["primitives"][0]["attributes"]


BAD_CASES = {
    "no_extension": (lambda d: d["meshes"][0]["primitives"][0].pop("extensions"), "no mesh primitive uses"),
    "missing_scale": (lambda d: _attrs(d).pop(PREFIX + "SCALE"), "lacks the attributes"),
    "count_mismatch": (lambda d: d["accessors"][_attrs(d)[PREFIX + "OPACITY"]].update(count=5), "disagree"),
    "huge_count": (lambda d: d["accessors"][_attrs(d)["POSITION"]].update(count=1 << 40), "reaches past"),
    "opacity_not_scalar": (lambda d: _attrs(d).update({PREFIX + "OPACITY": _attrs(d)[PREFIX + "SH_DEGREE_0_COEF_0"]}),
                           "must have 1 components"),
    "partial_sh": (lambda d: _attrs(d).pop(PREFIX + "SH_DEGREE_1_COEF_1"), "partly present"),
    "node_transform": (lambda d: d["nodes"][0].update(translation=[1, 0, 0]), "transform"),
    "triangles": (lambda d: d["meshes"][0]["primitives"][0].update(mode=4), "POINTS"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_get_a_clear_error(tmp_path, case):
    change, expected = BAD_CASES[case]
    good = save_gaussians(with_sh(sharp_like_scene(width=8, height=8, layers=1), 3), tmp_path / "good.glb")
    path = tmp_path / f"{case}.glb"
    _rewrite(good, path, change)
    with pytest.raises(ValueError, match=expected) as error:
        load_gaussians(path)
    assert str(path) in str(error.value)


def test_truncated_file(tmp_path):
    good = save_gaussians(sharp_like_scene(width=8, height=8, layers=1), tmp_path / "good.glb")
    path = tmp_path / "cut.glb"
    path.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated") as error:
        load_gaussians(path)
    assert str(path) in str(error.value)


def test_logit_opacities_are_refused(tmp_path):
    """A writer that stored logits (or log scales) instead of the spec's activated values."""
    good = save_gaussians(sharp_like_scene(width=8, height=8, layers=1), tmp_path / "good.glb")
    doc, blob = read_glb(good)
    view = doc["bufferViews"][doc["accessors"][_attrs(doc)[PREFIX + "OPACITY"]]["bufferView"]]
    data = bytearray(good.read_bytes())
    bin_start = len(data) - len(blob)
    data[bin_start + view["byteOffset"]: bin_start + view["byteOffset"] + 4] = struct.pack("<f", -2.5)
    path = tmp_path / "logit.glb"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="opacities in \\[0, 1\\]") as error:
        load_gaussians(path)
    assert str(path) in str(error.value)


def _sh_basis(d: torch.Tensor) -> torch.Tensor:
    """(M, 15) real SH functions of degrees 1-3 (3DGS order and signs) at unit directions d (M, 3)."""
    x, y, z = d.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    c1, c2, c3 = 0.4886025119029199, 1.0925484305920792, 0.5900435899266435
    return torch.stack([
        -c1 * y, c1 * z, -c1 * x,
        c2 * x * y, -c2 * y * z, 0.31539156525252005 * (2 * zz - xx - yy), -c2 * x * z, 0.5462742152960396 * (xx - yy),
        -c3 * y * (3 * xx - yy), 2.890611442640554 * x * y * z, -0.4570457994644658 * y * (4 * zz - xx - yy),
        0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy), -0.4570457994644658 * x * (4 * zz - xx - yy),
        1.445305721320277 * z * (xx - yy), -c3 * x * (xx - 3 * yy),
    ], dim=-1)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_half_turn_carries_sh_colour_with_the_view_direction(axis):
    """After a half turn R, each splat's SH colour seen along R d is what it was along d."""
    from sharp_core import half_turn

    scene = with_sh(sharp_like_scene(width=4, height=4, layers=1), 15)
    rotation = torch.diag(torch.tensor([1.0 if i == axis else -1.0 for i in range(3)]))
    turned = half_turn(scene, rotation)
    d = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    before = torch.einsum("mk,nkc->nmc", _sh_basis(d), scene.sh_rest[0])
    after = torch.einsum("mk,nkc->nmc", _sh_basis(d @ rotation.T), turned.sh_rest[0])
    torch.testing.assert_close(after, before)
    torch.testing.assert_close(turned.means[0], scene.means[0] @ rotation.T)
    with pytest.raises(ValueError, match="diagonal"):
        half_turn(scene, torch.diag(torch.tensor([-1.0, 1.0, 1.0])))
