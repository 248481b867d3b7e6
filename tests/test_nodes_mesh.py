"""SHARP to Mesh through the ComfyUI stand-ins: files in output/3d, the model_file strings Preview 3D
takes, batches, Cancel, errors, one real prediction end to end, and the core MESH output against a
stand-in with the real constructor (feature-detected: absent without `comfy_api.latest.Types.MESH`)."""

from __future__ import annotations

import importlib
import logging
import sys
import types

import numpy as np
import pytest
import torch

from comfy_env import PACK, TINY_NAME, cancel_after, comfy_base, files_under, small_scene  # noqa: F401

import comfy.model_management as mm
from nodes import NODE_CLASS_MAPPINGS
from sharp_core import project_points
from sharp_core.color import srgb_to_linear

trimesh = pytest.importorskip("trimesh", reason="trimesh (requirements-test.txt) reads the mesh files back")

ToMesh = NODE_CLASS_MAPPINGS["SharpToMesh"]
H, W = 24, 32


def smooth_scene(b: int = 1, seed: int = 0):
    """small_scene with a smooth depth map (a tilted plane 2-2.3 m away), so no face is cut."""
    scene = small_scene(b=b, seed=seed, size=(W, H))
    rows = torch.arange(H, dtype=torch.float32).view(1, H, 1)
    scene.depth = (2.0 + 0.3 * rows / H + 0.01 * torch.arange(b).view(b, 1, 1)).expand(b, H, W).clone()
    return scene


def run(gaussians, **kw):
    args = dict(edge_threshold=0.05, decimation=1, format="glb", color_mode="vertex colors", depth_source="auto",
                filename_prefix="3d/sharp_mesh")
    args.update(kw)
    return ToMesh().mesh(gaussians, **args)


def load(path):
    loaded = trimesh.load(path, process=False)
    if isinstance(loaded, trimesh.Scene):
        (loaded,) = loaded.geometry.values()
    return loaded


def test_glb_lands_in_output_3d_and_model_file_is_what_preview_3d_reads(comfy_base):
    photo = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(1))
    progress = cancel_after(10**9)
    out = run(smooth_scene(), image=photo)
    assert out["result"] == (["3d/sharp_mesh_00001_.glb"],)  # relative to output/, '/' separators
    assert out["ui"] == {"3d": [{"filename": "sharp_mesh_00001_.glb", "subfolder": "3d", "type": "output"}]}
    assert files_under(comfy_base / "output") == ["3d/sharp_mesh_00001_.glb"] and progress == [1, 2]  # meshed, saved
    mesh = load(comfy_base / "output" / "3d" / "sharp_mesh_00001_.glb")
    assert mesh.vertices.shape == (H * W, 3) and mesh.faces.shape == (2 * (H - 1) * (W - 1), 3)
    np.testing.assert_allclose(mesh.visual.vertex_attributes["color"], srgb_to_linear(photo[0]).reshape(-1, 3),
                               atol=1e-6)
    # y up: the top image row (y < 0 in OpenCV) is at positive y in the file
    assert mesh.vertices[0, 1] > 0 and mesh.vertices[-1, 1] < 0 and (mesh.vertices[:, 2] < 0).all()
    again = run(smooth_scene(), image=photo)
    assert again["result"] == (["3d/sharp_mesh_00002_.glb"],)  # ComfyUI's counter: nothing overwritten


def test_batch_formats_and_one_image_per_scene(comfy_base):
    photos = torch.rand(2, H, W, 3)
    out = run(smooth_scene(b=2), image=photos, format="obj", color_mode="texture", filename_prefix="meshes/room")
    assert out["result"] == (["meshes/room_00001_.obj", "meshes/room_00002_.obj"],)
    assert files_under(comfy_base / "output") == [f"meshes/room_0000{i}_.{ext}" for i in (1, 2)
                                                  for ext in ("mtl", "obj", "png")]
    second = load(comfy_base / "output" / "meshes" / "room_00002_.obj")
    image = np.asarray(second.visual.material.image.convert("RGB"))
    np.testing.assert_array_equal(image, (photos[1] * 255).round().to(torch.uint8).numpy())
    ply = run(smooth_scene(), format="ply", decimation=4, filename_prefix="3d/small")
    mesh = load(comfy_base / "output" / "3d" / "small_00001_.ply")
    assert ply["result"] == (["3d/small_00001_.ply"],) and mesh.vertices.shape == (7 * 9, 3)  # rows 0..20, 23


def test_without_a_photo_the_splats_give_the_colours_and_a_loaded_scene_is_rendered(comfy_base):
    scene = smooth_scene()
    run(scene)  # colours rendered from the source camera
    scene.depth = None  # as Load Gaussians gives it: the depth comes from the render
    out = run(scene, edge_threshold=0.0)
    mesh = load(comfy_base / "output" / out["result"][0][0])
    assert 0 < mesh.vertices.shape[0] <= H * W
    with pytest.raises(ValueError, match="no depth map"):
        run(scene, depth_source="depth map")


def test_bad_inputs_are_named_and_write_nothing(comfy_base):
    with pytest.raises(ValueError, match="vertex colours only"):
        run(smooth_scene(), format="ply", color_mode="texture")
    with pytest.raises(ValueError, match="inside ComfyUI's output folder"):
        run(smooth_scene(), filename_prefix="../outside")
    with pytest.raises(ValueError, match="3 images for 2 scenes"):
        run(smooth_scene(b=2), image=torch.rand(3, H, W, 3))
    with pytest.raises(ValueError, match="unknown format"):
        run(smooth_scene(), format="fbx")
    with pytest.raises(ValueError, match="aspect ratio"):
        run(smooth_scene(), image=torch.rand(1, H, 2 * W, 3))
    empty = smooth_scene()
    empty.depth = torch.zeros_like(empty.depth)  # no surface anywhere
    with pytest.raises(ValueError, match="no triangles left"):
        run(empty)
    assert files_under(comfy_base / "output") == []


def test_cancel_while_meshing_writes_nothing_and_while_saving_keeps_whole_files(comfy_base):
    cancel_after(1)  # steps 1-3 mesh the three scenes, 4-6 save them
    with pytest.raises(mm.InterruptProcessingException):
        run(smooth_scene(b=3))
    assert files_under(comfy_base / "output") == []
    mm.interrupt_current_processing(False)
    cancel_after(4)
    with pytest.raises(mm.InterruptProcessingException):
        run(smooth_scene(b=3))
    assert files_under(comfy_base / "output") == ["3d/sharp_mesh_00001_.glb"]  # the first scene, complete


def test_a_scene_without_triangles_stops_the_batch_before_any_file(comfy_base):
    batch = smooth_scene(b=2)
    batch.depth[1] = torch.where(torch.arange(W) % 2 == 0, 1.0, 5.0).expand(H, W)  # a jump between every column
    with pytest.raises(ValueError, match="scene 2 has no triangles left"):
        run(batch)
    assert files_under(comfy_base / "output") == []


def test_real_prediction_to_mesh(comfy_base):
    """The tiny checkpoint's prediction of a photo: the depth map meshes, and the file's vertices
    project back onto the photo's pixel centres."""
    (model,) = NODE_CLASS_MAPPINGS["SharpModelLoader"]().load(TINY_NAME, "auto", False)
    photo = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(7))
    gaussians, _, focal_px = NODE_CLASS_MAPPINGS["SharpPredict"]().predict(model, photo, 30.0, "mm (35 mm equivalent)")
    out = run(gaussians, image=photo, edge_threshold=0.0)
    mesh = load(comfy_base / "output" / out["result"][0][0])
    assert mesh.vertices.shape == (H * W, 3)
    opencv = torch.from_numpy(np.asarray(mesh.vertices, dtype=np.float32)) * torch.tensor([1.0, -1.0, -1.0])
    pixels = project_points(opencv, focal_px, (W, H))
    i, j = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    centres = torch.stack((j + 0.5, i + 0.5), -1).reshape(-1, 2).float()
    assert (pixels - centres).abs().max() < 1e-3
    torch.testing.assert_close(opencv[:, 2], gaussians.depth[0].reshape(-1).cpu())


# -- the core MESH type ------------------------------------------------------------------------------
class MeshLatest:
    """Stand-in with the constructor of comfy_api/latest/_util/geometry_types.py's MESH (2026)."""

    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor | None = None,
                 vertex_colors: torch.Tensor | None = None, texture: torch.Tensor | None = None,
                 vertex_counts: torch.Tensor | None = None, face_counts: torch.Tensor | None = None,
                 unlit: bool = False):
        assert (vertex_counts is None) == (face_counts is None)
        self.vertices, self.faces, self.uvs, self.vertex_colors, self.texture = vertices, faces, uvs, vertex_colors, texture
        self.vertex_counts, self.face_counts, self.unlit = vertex_counts, face_counts, unlit


class MeshBasic:
    """Stand-in with the first comfy_api MESH constructor: vertices and faces only."""

    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor):
        self.vertices, self.faces = vertices, faces


@pytest.fixture
def with_core_mesh(monkeypatch):
    """Reload nodes.mesh under a `comfy_api.latest` whose Types has the given MESH class."""
    module_name = f"{PACK}.nodes.mesh"

    def install(mesh_class):
        latest = types.ModuleType("comfy_api.latest")
        latest.Types = type("Types", (), {"MESH": mesh_class})
        package = types.ModuleType("comfy_api")
        package.latest = latest
        monkeypatch.setitem(sys.modules, "comfy_api", package)
        monkeypatch.setitem(sys.modules, "comfy_api.latest", latest)
        return importlib.reload(sys.modules[module_name])

    yield install
    monkeypatch.undo()
    importlib.reload(sys.modules[module_name])


def test_no_mesh_output_without_the_core_type(caplog):
    with caplog.at_level(logging.DEBUG):
        module = importlib.reload(sys.modules[f"{PACK}.nodes.mesh"])
    assert module.CORE_MESH is None and module.SharpToMesh.RETURN_TYPES == ("STRING",)
    assert len(module.SharpToMesh.OUTPUT_TOOLTIPS) == len(module.SharpToMesh.OUTPUT_IS_LIST) == 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_mesh_output_matches_the_file(comfy_base, with_core_mesh):
    module = with_core_mesh(MeshLatest)
    node = module.SharpToMesh
    assert node.RETURN_TYPES == ("STRING", "MESH") and node.RETURN_NAMES == ("model_file", "mesh")
    assert node.OUTPUT_IS_LIST == (True, False) and len(node.OUTPUT_TOOLTIPS) == 2
    photo = torch.rand(1, H, W, 3)
    result = node().mesh(smooth_scene(), image=photo, edge_threshold=0.05, decimation=1, format="glb",
                         color_mode="vertex colors", depth_source="auto", filename_prefix="3d/sharp_mesh")["result"]
    core = result[1]
    assert isinstance(core, MeshLatest)
    on_disk = load(comfy_base / "output" / result[0][0])
    assert core.vertices.shape == (1, H * W, 3) and core.vertices.dtype == torch.float32
    assert core.faces.shape == (1, 2 * (H - 1) * (W - 1), 3) and core.faces.dtype == torch.int64
    np.testing.assert_array_equal(core.vertices[0].numpy(), on_disk.vertices)  # y up, as the .glb POSITION
    np.testing.assert_array_equal(core.faces[0].numpy(), on_disk.faces)
    torch.testing.assert_close(core.vertex_colors[0], srgb_to_linear(photo[0]).reshape(-1, 3))  # linear, as COLOR_0
    assert core.uvs is None and core.texture is None and core.unlit is True and core.vertex_counts is None
    assert core.vertices.device == mm.intermediate_device()


def test_mesh_output_texture_and_uneven_batch(comfy_base, with_core_mesh):
    module = with_core_mesh(MeshLatest)
    scenes = smooth_scene(b=2)
    scenes.depth[1, :, 20:] += 3.0  # scene 2 loses the faces across a jump: fewer faces
    photos = torch.rand(2, H, W, 3)
    result = module.SharpToMesh().mesh(scenes, image=photos, edge_threshold=0.05, decimation=1, format="glb",
                                       color_mode="texture", depth_source="auto",
                                       filename_prefix="3d/sharp_mesh")["result"]
    core = result[1]
    assert core.face_counts.tolist() == [2 * (H - 1) * (W - 1), 2 * (H - 1) * (W - 1) - 2 * (H - 1)]
    assert core.vertex_counts.tolist() == [H * W, H * W] and core.faces.shape[:2] == (2, 2 * (H - 1) * (W - 1))
    assert core.vertex_colors is None and core.uvs.shape == (2, H * W, 2)
    torch.testing.assert_close(core.texture, photos)  # sRGB, (B, H, W, 3)
    second = load(comfy_base / "output" / result[0][1])
    np.testing.assert_array_equal(core.faces[1, :core.face_counts[1]].numpy(), second.faces)
    np.testing.assert_allclose(core.uvs[1].numpy()[:, 1], 1 - second.visual.uv[:, 1], atol=1e-6)  # glTF: v down


def test_mesh_output_for_a_mesh_type_without_counts_or_colours(comfy_base, with_core_mesh):
    module = with_core_mesh(MeshBasic)
    scenes = smooth_scene(b=2)
    scenes.depth[1, :, 28:] = 0.0  # scene 2 has no surface in its last 4 columns: fewer vertices and faces
    result = module.SharpToMesh().mesh(scenes, edge_threshold=0.05, decimation=1, format="glb",
                                       color_mode="vertex colors", depth_source="auto",
                                       filename_prefix="3d/sharp_mesh")["result"]
    core = result[1]
    assert isinstance(core, MeshBasic) and core.faces.shape == (2, 2 * (H - 1) * (W - 1), 3)
    assert core.vertices.shape == (2, H * W, 3)
    kept_faces = 2 * (H - 1) * (W - 5)
    assert (core.faces[1, kept_faces:] == 0).all()  # degenerate padding faces: no area, nothing drawn
    second = load(comfy_base / "output" / result[0][1])
    assert len(second.vertices) == H * (W - 4) and len(second.faces) == kept_faces
    np.testing.assert_array_equal(core.vertices[1, :len(second.vertices)].numpy(), second.vertices)
    # padded vertices copy vertex 0, so the bounds a viewer frames stay those of the mesh
    assert (core.vertices[1, len(second.vertices):] == core.vertices[1, 0]).all()
