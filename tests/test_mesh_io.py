"""Mesh files (.glb, .obj, .ply) read back by trimesh, a real third-party reader, and by our own glTF reader:
counts, y-up positions, winding, colour spaces, texture and UVs, atomic writes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharp_core import depth_to_mesh, mesh_files, save_mesh, y_up_vertices
from sharp_core.color import linear_to_srgb
from sharp_core.glb import accessor_array, read_glb
import sharp_core.mesh_io as mesh_io

trimesh = pytest.importorskip("trimesh", reason="trimesh (requirements-test.txt) reads the mesh files back")

H, W, FOCAL = 18, 26, 24.0


@pytest.fixture(scope="module")
def mesh():
    i, j = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    depth = 2.0 + 0.1 * i / H
    depth[:, 17:] += 2.0  # a depth edge, so some faces are cut and the counts are not the grid's
    photo = torch.rand(H, W, 3, generator=torch.Generator().manual_seed(5))
    built = depth_to_mesh(depth, FOCAL, image=photo)
    assert built.num_faces < 2 * (H - 1) * (W - 1)
    return built


def only_geometry(loaded):
    if isinstance(loaded, trimesh.Scene):
        (geometry,) = loaded.geometry.values()
        return geometry
    return loaded


def srgb_bytes(linear: torch.Tensor) -> np.ndarray:
    return (linear_to_srgb(linear.clamp(0, 1)) * 255).round().to(torch.uint8).numpy()


def test_y_up_frame_is_a_half_turn_about_x(mesh):
    up = y_up_vertices(mesh)
    ref = mesh.vertices.numpy()
    np.testing.assert_array_equal(up, np.stack([ref[:, 0], -ref[:, 1], -ref[:, 2]], 1))
    a, b, c = (up[mesh.faces.numpy()[:, k]] for k in range(3))
    normals, centroids = np.cross(b - a, c - a), (a + b + c) / 3
    assert ((normals * centroids).sum(1) < 0).all()  # still facing the camera at the origin (now looking down -z)


def test_glb_vertex_colours(mesh, tmp_path):
    (path,) = save_mesh(mesh, tmp_path / "m.glb")
    loaded = only_geometry(trimesh.load(path, process=False))
    assert loaded.vertices.shape == (mesh.num_vertices, 3) and loaded.faces.shape == (mesh.num_faces, 3)
    np.testing.assert_allclose(loaded.vertices, y_up_vertices(mesh), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.faces, mesh.faces.numpy())
    # COLOR_0 is linear (glTF spec), stored as floats: exactly our linear colours
    np.testing.assert_allclose(loaded.visual.vertex_attributes["color"], mesh.colors.numpy(), rtol=0, atol=1e-7)
    doc, blob = read_glb(path)
    primitive = doc["meshes"][0]["primitives"][0]
    assert primitive["mode"] == 4 and set(primitive["attributes"]) == {"POSITION", "COLOR_0"}
    position = doc["accessors"][primitive["attributes"]["POSITION"]]
    np.testing.assert_allclose(position["min"], y_up_vertices(mesh).min(0))
    assert doc["accessors"][primitive["attributes"]["COLOR_0"]]["componentType"] == 5126
    material = doc["materials"][primitive["material"]]
    assert "KHR_materials_unlit" in material["extensions"] and doc["extensionsUsed"] == ["KHR_materials_unlit"]
    assert material["doubleSided"] is True
    np.testing.assert_array_equal(accessor_array(doc, blob, primitive["indices"]).reshape(-1, 3), mesh.faces.numpy())


def test_glb_texture(mesh, tmp_path):
    (path,) = save_mesh(mesh, tmp_path / "t.glb", color_mode="texture")
    loaded = only_geometry(trimesh.load(path, process=False))
    assert loaded.vertices.shape == (mesh.num_vertices, 3) and loaded.faces.shape == (mesh.num_faces, 3)
    uv = mesh.uvs.numpy()
    np.testing.assert_allclose(loaded.visual.uv, np.stack([uv[:, 0], 1 - uv[:, 1]], 1), atol=1e-6)  # trimesh: v up
    image = np.asarray(loaded.visual.material.baseColorTexture.convert("RGB"))
    np.testing.assert_array_equal(image, (mesh.texture * 255).round().to(torch.uint8).numpy())  # sRGB, lossless
    doc, _ = read_glb(path)
    primitive = doc["meshes"][0]["primitives"][0]
    assert set(primitive["attributes"]) == {"POSITION", "TEXCOORD_0"}
    assert doc["images"][0]["mimeType"] == "image/png"
    assert doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"] == {"index": 0, "texCoord": 0}
    # the first vertex is pixel (0, 0): its UV is that pixel's centre
    np.testing.assert_allclose(uv[0], [0.5 / W, 0.5 / H])


def test_ply_vertex_colours(mesh, tmp_path):
    (path,) = save_mesh(mesh, tmp_path / "m.ply")
    loaded = trimesh.load(path, process=False)
    np.testing.assert_allclose(loaded.vertices, y_up_vertices(mesh), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.faces, mesh.faces.numpy())
    np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], srgb_bytes(mesh.colors))  # sRGB bytes
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert "binary_little_endian" in header and "property list uchar int vertex_indices" in header


def test_obj_vertex_colours(mesh, tmp_path):
    files = save_mesh(mesh, tmp_path / "m.obj")
    assert files == [tmp_path / "m.obj"] and sorted(p.name for p in tmp_path.iterdir()) == ["m.obj"]
    loaded = trimesh.load(files[0], process=False)
    np.testing.assert_allclose(loaded.vertices, y_up_vertices(mesh), atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, mesh.faces.numpy())
    got = loaded.visual.vertex_colors[:, :3].astype(int)
    assert np.abs(got - srgb_bytes(mesh.colors).astype(int)).max() <= 1  # 4 decimals of sRGB in the file


def test_obj_texture_set(mesh, tmp_path):
    files = save_mesh(mesh, tmp_path / "t.obj", color_mode="texture")
    assert [p.name for p in files] == ["t.obj", "t.mtl", "t.png"] == [p.name for p in mesh_files(
        tmp_path / "t.obj", color_mode="texture")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.mtl", "t.obj", "t.png"]  # no temporary left
    assert "map_Kd t.png" in (tmp_path / "t.mtl").read_text()
    assert (tmp_path / "t.obj").read_text().splitlines()[1] == "mtllib t.mtl"
    loaded = trimesh.load(files[0], process=False)
    assert loaded.faces.shape == (mesh.num_faces, 3)
    # OBJ splits vertices by (position, uv) pairs; ours are one uv per position, so they stay as they are
    np.testing.assert_allclose(loaded.vertices, y_up_vertices(mesh), atol=1e-6)
    uv = mesh.uvs.numpy()
    np.testing.assert_allclose(loaded.visual.uv, np.stack([uv[:, 0], 1 - uv[:, 1]], 1), atol=1e-6)
    image = np.asarray(loaded.visual.material.image.convert("RGB"))
    np.testing.assert_array_equal(image, (mesh.texture * 255).round().to(torch.uint8).numpy())


def test_an_obj_set_that_fails_leaves_nothing(mesh, tmp_path, monkeypatch):
    def broken_png(texture):
        raise OSError("disk full")

    monkeypatch.setattr(mesh_io, "_png", broken_png)
    with pytest.raises(OSError, match="disk full"):
        save_mesh(mesh, tmp_path / "t.obj", color_mode="texture")
    assert list(tmp_path.iterdir()) == []


def test_the_obj_appears_only_after_the_files_it_names(mesh, tmp_path, monkeypatch):
    import os

    import sharp_core.atomic as atomic

    order, real_replace = [], os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (order.append(os.path.basename(dst)),
                                                                real_replace(src, dst)))
    written = save_mesh(mesh, tmp_path / "t.obj", color_mode="texture")
    assert [p.name for p in written] == ["t.obj", "t.mtl", "t.png"]
    assert order == ["t.png", "t.mtl", "t.obj"]


def test_a_failed_glb_keeps_the_old_file(mesh, tmp_path, monkeypatch):
    (path,) = save_mesh(mesh, tmp_path / "m.glb")
    before = path.read_bytes()
    monkeypatch.setattr(mesh_io, "glb_bytes", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        save_mesh(mesh, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.glb"]


def test_errors(mesh, tmp_path):
    with pytest.raises(ValueError, match="vertex colours only"):
        save_mesh(mesh, tmp_path / "m.ply", color_mode="texture")
    with pytest.raises(ValueError, match="unknown mesh format"):
        save_mesh(mesh, tmp_path / "m.stl")
    with pytest.raises(ValueError, match="must end in .glb"):
        save_mesh(mesh, tmp_path / "m.obj", format="glb")
    with pytest.raises(ValueError, match="color_mode"):
        save_mesh(mesh, tmp_path / "m.glb", color_mode="rainbow")
    flat = depth_to_mesh(torch.full((4, 4), 2.0), 5.0)
    with pytest.raises(ValueError, match="no texture image"):
        save_mesh(flat, tmp_path / "m.glb", color_mode="texture")
    empty = depth_to_mesh(torch.zeros(4, 4), 5.0)
    with pytest.raises(ValueError, match="no triangles left"):
        save_mesh(empty, tmp_path / "m.glb")
    with pytest.raises(TypeError, match="TriangleMesh"):
        save_mesh({"vertices": []}, tmp_path / "m.glb")
    assert list(tmp_path.iterdir()) == []
