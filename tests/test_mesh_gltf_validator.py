"""SHARP to Mesh's .glb files through the Khronos glTF-Validator (npm `gltf-validator`, run by
tests/third_party_readers.py): no error and no warning, with vertex colours and with a texture,
cut at depth edges and decimated; and a broken file fails (the check can fail)."""

from __future__ import annotations

import pytest
import torch

from sharp_core import depth_to_mesh, save_mesh

readers = pytest.importorskip(
    "third_party_readers", reason="tests/third_party_readers.py (the npm reader harness) runs the Khronos validator")
gltf_validator = readers.gltf_validator  # the session fixture (skips only without Node.js / npm)

H, W, FOCAL = 30, 40, 36.0


def two_planes() -> tuple[torch.Tensor, torch.Tensor]:
    depth = torch.full((H, W), 1.5)
    depth[:, W // 2:] = 4.0  # a depth jump: the faces across it are cut
    depth[:2, :3] = 0.0  # a few empty pixels: their vertices are dropped
    photo = torch.rand(H, W, 3, generator=torch.Generator().manual_seed(3))
    return depth, photo


@pytest.mark.parametrize("color_mode", ["vertex colors", "texture"])
@pytest.mark.parametrize("decimation", [1, 3])
def test_mesh_glb_has_no_errors_or_warnings(tmp_path, gltf_validator, color_mode, decimation):  # noqa: F811
    depth, photo = two_planes()
    mesh = depth_to_mesh(depth, FOCAL, image=photo, edge_threshold=0.05, decimation=decimation)
    assert 0 < mesh.num_faces < 2 * (H - 1) * (W - 1)
    (path,) = save_mesh(mesh, tmp_path / "mesh.glb", color_mode=color_mode)
    (report,) = gltf_validator([path])
    assert "fatal" not in report, report["fatal"]
    errors, warnings = readers.gltf_messages(report, 0), readers.gltf_messages(report, 1)
    assert errors == [] and warnings == [], errors + warnings
    info = report["info"]
    assert info["drawCallCount"] == 1 and info["totalTriangleCount"] == mesh.num_faces
    assert info["totalVertexCount"] == mesh.num_vertices
    assert report["issues"]["numErrors"] == 0


def test_the_validator_sees_a_broken_mesh(tmp_path, gltf_validator):  # noqa: F811
    """The check can fail: a face index past the last vertex is an error the validator reports."""
    depth, photo = two_planes()
    mesh = depth_to_mesh(depth, FOCAL, image=photo)
    mesh.faces[0, 0] = mesh.num_vertices + 5
    (path,) = save_mesh(mesh, tmp_path / "broken.glb")
    (report,) = gltf_validator([path])
    assert any("ACCESSOR_INDEX_OOB" in m for m in readers.gltf_messages(report, 0)), readers.gltf_messages(report, 0)
