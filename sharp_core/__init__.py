"""SHARP single-image-to-3D-Gaussians engine: plain PyTorch, no ComfyUI imports.

These names are the engine's public contract; the ComfyUI nodes use nothing else. Importing the
package never fails on an optional backend: gsplat (CUDA) is imported only when a render asks for it.
No public function shares its module's name (`predict` lives in `prediction`, `render` in
`rendering`), so importing a submodule never shadows a function.
"""

from __future__ import annotations

from .camera import Camera, camera_from_view, look_at, scene_intrinsics, view_from_camera
from .camera_views import MAX_CAMERA_VIEWS, opening_view, parse_camera_views
from .checkpoint import CHECKPOINT_SUFFIXES, DTYPES, ArchitectureUnknown, load_model, resolve_dtype
from .core_splat import DEFAULT_FOCAL_PX, DEFAULT_IMAGE_SIZE, gaussians_from_splat_tensors, splat_tensors
from .edit import (
    OPENCV_TO_Y_UP, crop, decimate, drop_transparent, half_turn, recenter, rotation_from_euler_deg, stack_scenes, transform,
)
from .exif import focal_mm_from_exif, load_image, pil_to_rgb
from .formats import FORMATS, SplatFormat, format_for_path, load_gaussians, load_ply, save_gaussians, save_ply
from .gaussians import Gaussians
from .mesh import (
    DEFAULT_EDGE_THRESHOLD, DEPTH_SOURCES, TriangleMesh, depth_to_mesh, project_points, scene_mesh, unproject_pixels,
)
from .mesh_io import COLOR_MODES, MESH_FORMATS, mesh_files, save_mesh, y_up_vertices
from .network import SharpModel
from .prediction import DEFAULT_FOCAL_MM, MIN_IMAGE_SIDE, check_images, focal_px_from_mm, predict, prediction_steps
from .progress import ProgressCallback, TqdmProgress
from .preview_file import DEFAULT_MAX_SPLATS as PREVIEW_MAX_SPLATS
from .preview_file import read_preview, write_preview
from .rendering import RenderResult, render, render_many
from .sequence import IN_MEMORY_SCENES, SceneSequence, SceneSequenceWriter, align_scale, iter_scenes, median_depth
from .stereo import STEREO_MODES, anaglyph_red_cyan, pack_stereo, render_stereo, squeeze_camera, stereo_eye_size, stereo_pair
from .trajectory import TRAJECTORY_KINDS, camera_path, keyframe_trajectory, move_camera
from .view_path import interpolate_views, slerp, view_size
from .weights import CHECKPOINT_NAME, HF_REPO, CheckpointUnavailable, default_checkpoint_dir, download_checkpoint

__all__ = [
    "IN_MEMORY_SCENES",
    "STEREO_MODES", "SceneSequence", "SceneSequenceWriter", "align_scale", "anaglyph_red_cyan", "interpolate_views",
    "iter_scenes", "median_depth", "pack_stereo", "render_stereo", "slerp", "squeeze_camera", "stereo_eye_size",
    "stereo_pair", "view_size",
    "COLOR_MODES", "DEFAULT_EDGE_THRESHOLD", "DEPTH_SOURCES", "MESH_FORMATS", "TriangleMesh", "depth_to_mesh",
    "mesh_files", "project_points", "save_mesh", "scene_mesh", "unproject_pixels", "y_up_vertices",
    "CHECKPOINT_NAME", "CHECKPOINT_SUFFIXES", "Camera", "CheckpointUnavailable", "DEFAULT_FOCAL_MM", "DTYPES",
    "FORMATS", "Gaussians", "HF_REPO", "MIN_IMAGE_SIDE", "OPENCV_TO_Y_UP", "PREVIEW_MAX_SPLATS", "RenderResult",
    "SharpModel", "SplatFormat", "TRAJECTORY_KINDS", "camera_from_view", "camera_path", "check_images", "crop",
    "decimate", "default_checkpoint_dir", "download_checkpoint", "drop_transparent", "focal_mm_from_exif",
    "focal_px_from_mm", "format_for_path", "keyframe_trajectory", "load_gaussians", "load_image", "load_model",
    "load_ply", "look_at", "move_camera", "pil_to_rgb", "predict", "read_preview", "recenter", "render", "render_many",
    "half_turn", "resolve_dtype", "rotation_from_euler_deg", "save_gaussians", "save_ply", "scene_intrinsics",
    "stack_scenes", "transform", "view_from_camera", "write_preview", "splat_tensors", "gaussians_from_splat_tensors",
    "DEFAULT_FOCAL_PX", "DEFAULT_IMAGE_SIZE",
    "MAX_CAMERA_VIEWS", "opening_view", "parse_camera_views",
]
# Checkpoint descriptions and progress inside one prediction.
__all__ += ["ArchitectureUnknown", "ProgressCallback", "TqdmProgress", "prediction_steps"]
