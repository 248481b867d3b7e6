"""The public names stay callable whatever was imported first."""

import importlib

import sharp_core


def test_public_functions_survive_submodule_imports():
    for module in ("prediction", "checkpoint", "ply", "exif", "cli", "rendering", "rendering.torch_tiles",
                   "rendering.gsplat_backend", "trajectory", "camera", "preview_file", "mesh", "mesh_io"):
        importlib.import_module(f"sharp_core.{module}")
    for name in ("predict", "load_model", "save_ply", "load_ply", "focal_px_from_mm", "focal_mm_from_exif",
                 "render", "render_many", "look_at", "move_camera", "camera_path", "keyframe_trajectory",
                 "depth_to_mesh", "scene_mesh", "save_mesh", "mesh_files", "project_points"):
        assert callable(getattr(sharp_core, name)), name
    assert isinstance(sharp_core.Gaussians, type) and isinstance(sharp_core.Camera, type)
