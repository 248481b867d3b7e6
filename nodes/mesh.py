"""SHARP to Mesh: the source view's depth as a coloured triangle mesh in ComfyUI's output folder.

The files go to output/<filename_prefix> (default output/3d/), and `model_file` is each file's path
relative to the output folder with '/' separators ("3d/sharp_mesh_00001_.glb"): the string the
core Preview 3D node takes (its front end fetches it with /view?type=output). Where the running
ComfyUI has a core MESH type (`comfy_api.latest.Types.MESH`), the node also outputs the meshes as
one MESH batch; elsewhere that output does not exist.
"""

from __future__ import annotations

import inspect
import os

import comfy.model_management as mm
import comfy.utils
import torch

from ..sharp_core import (
    COLOR_MODES, DEFAULT_EDGE_THRESHOLD, DEPTH_SOURCES, MESH_FORMATS, check_images, save_mesh, scene_mesh,
    y_up_vertices,
)
from .common import CATEGORY, GAUSSIANS, float_input, save_target

MAX_DECIMATION = 64


def core_mesh_type():
    """ComfyUI's MESH class where the running ComfyUI has one (2026 and later), else None."""
    try:
        from comfy_api.latest import Types
    except Exception:  # no comfy_api (ComfyUI before 0.3.4x) or one that fails to import here
        return None
    return getattr(Types, "MESH", None)


def to_core_mesh(meshes: list, color_mode: str, mesh_type, device=None):
    """Our `TriangleMesh`es as one core MESH batch, filled field by field as ComfyUI's own nodes do.

    vertices (B, N, 3) float32 in glTF's y-up frame (the core writes them as POSITION unchanged),
    faces (B, M, 3) int64; vertex_colors (B, N, 3) linear RGB in [0, 1] (written as COLOR_0), or
    uvs (B, N, 2) in glTF's top-left convention plus texture (B, H, W, 3) sRGB; unlit (the colours
    are the photo's). Meshes of different sizes are zero-padded with vertex_counts / face_counts,
    or, for a MESH without those fields, padded with copies of vertex 0 and degenerate faces.
    Fields the running ComfyUI's MESH lacks are not passed.
    """
    accepted = set(inspect.signature(mesh_type).parameters)
    textures = [m.texture for m in meshes]
    textured = (color_mode == "texture" and all(t is not None for t in textures)
                and len({tuple(t.shape) for t in textures}) == 1)  # one (B, H, W, 3) stack, else colours
    verts = [torch.from_numpy(y_up_vertices(m)) for m in meshes]
    faces = [m.faces.detach().cpu().to(torch.int64) for m in meshes]
    extra = [m.uvs.detach().cpu().float() if textured else m.colors.detach().cpu().float().clamp(0, 1) for m in meshes]
    n, f = max(v.shape[0] for v in verts), max(x.shape[0] for x in faces)
    uneven = any(v.shape[0] != n for v in verts) or any(x.shape[0] != f for x in faces)
    counted = uneven and {"vertex_counts", "face_counts"} <= accepted

    def pad(rows: torch.Tensor, length: int, fill_first: bool) -> torch.Tensor:
        if rows.shape[0] == length:
            return rows
        filler = (rows[:1] if fill_first else torch.zeros_like(rows[:1])).expand(length - rows.shape[0], -1)
        return torch.cat((rows, filler))

    kwargs = {}
    if counted:
        kwargs["vertex_counts"] = torch.tensor([v.shape[0] for v in verts], dtype=torch.int64)
        kwargs["face_counts"] = torch.tensor([x.shape[0] for x in faces], dtype=torch.int64)
    copy_first = not counted  # without counts, padding must not move the bounds or add visible faces
    vertices = torch.stack([pad(v, n, copy_first) for v in verts])
    face_batch = torch.stack([pad(x, f, False) for x in faces])
    attribute = torch.stack([pad(e, n, copy_first) for e in extra])
    if textured:
        kwargs["uvs"] = attribute
        kwargs["texture"] = torch.stack([t.detach().cpu().float().clamp(0, 1) for t in textures])
    else:
        kwargs["vertex_colors"] = attribute
    if "unlit" in accepted:
        kwargs["unlit"] = True
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    if device is not None:
        vertices, face_batch = vertices.to(device), face_batch.to(device)
        kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    return mesh_type(vertices, face_batch, **kwargs)


CORE_MESH = core_mesh_type()


class SharpToMesh:
    DESCRIPTION = (
        "Turns each scene's source view into a triangle mesh: SHARP's metric depth map (or the splats' rendered "
        "depth) as vertices, the photo as vertex colours or texture, the long triangles across depth edges cut. "
        "Saves .glb / .obj / .ply into the output folder (3d/ by default) for Preview 3D, Blender and other tools."
    )
    CATEGORY = CATEGORY
    FUNCTION = "mesh"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",) + (("MESH",) if CORE_MESH is not None else ())
    RETURN_NAMES = ("model_file",) + (("mesh",) if CORE_MESH is not None else ())
    OUTPUT_IS_LIST = (True,) + ((False,) if CORE_MESH is not None else ())
    OUTPUT_TOOLTIPS = (
        "One path per scene, relative to the output folder ('3d/sharp_mesh_00001_.glb'): wire it to Preview 3D's "
        "model_file.",
    ) + (("The meshes as ComfyUI's MESH (y up, metres) for the core 3D nodes.",) if CORE_MESH is not None else ())

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS, {"tooltip": "Scene(s) from SHARP Predict (depth map) or Load / Edit Gaussians."}),
                "edge_threshold": float_input(
                    DEFAULT_EDGE_THRESHOLD, 0.0, 10.0, 0.005,
                    "Cut triangles whose corners' depths differ by more than this fraction of the nearest one "
                    "(0.05 = 5 %): removes the stretched sheets between foreground and background. 0 keeps all."),
                "decimation": ("INT", {
                    "default": 1, "min": 1, "max": MAX_DECIMATION, "step": 1,
                    "tooltip": "Keep every n-th pixel in each direction: 1 = one vertex per pixel, 2 = 4x fewer "
                               "triangles, 4 = 16x fewer. A texture keeps the photo's full resolution.",
                }),
                "format": (list(MESH_FORMATS), {
                    "default": "glb",
                    "tooltip": "glb: one file for Preview 3D / Load 3D, Blender, web viewers. obj: .obj (+ .mtl and "
                               ".png with a texture). ply: binary, vertex colours.",
                }),
                "color_mode": (list(COLOR_MODES), {
                    "default": COLOR_MODES[0],
                    "tooltip": "vertex colors: a colour per vertex. texture: the photo as an image with UVs "
                               "(glb and obj; sharper when decimating).",
                }),
                "depth_source": (list(DEPTH_SOURCES), {
                    "default": "auto",
                    "tooltip": "depth map: SHARP's predicted depth of the photo. render splats: the splats' depth "
                               "seen from the source camera (PLY-loaded or edited scenes). auto: the depth map "
                               "when the scene has one.",
                }),
                "filename_prefix": ("STRING", {
                    "default": "3d/sharp_mesh",
                    "tooltip": "Relative to the output folder (3d/ is where ComfyUI's 3D nodes look); files are "
                               "named <prefix>_00001_.<format>, counting up.",
                }),
            },
            "optional": {
                "image": ("IMAGE", {
                    "tooltip": "The photo the scene was predicted from, for the colours (one, or one per scene). "
                               "Without it the splats are rendered from the source camera for the colours."}),
            },
        }

    def mesh(self, gaussians, edge_threshold: float = DEFAULT_EDGE_THRESHOLD, decimation: int = 1,
             format: str = "glb", color_mode: str = COLOR_MODES[0], depth_source: str = "auto",
             filename_prefix: str = "3d/sharp_mesh", image=None):
        for name, value, choices in (("format", format, MESH_FORMATS), ("color_mode", color_mode, COLOR_MODES),
                                     ("depth_source", depth_source, DEPTH_SOURCES)):
            if value not in choices:
                raise ValueError(f"SHARP to Mesh: unknown {name} '{value}'; choose one of {', '.join(choices)}.")
        if format == "ply" and color_mode == "texture":
            raise ValueError("SHARP to Mesh: PLY meshes carry vertex colours only; choose color_mode "
                             "'vertex colors', or format glb / obj for a texture.")
        scenes = gaussians.scenes()
        images = self._images(image, len(scenes))
        target = save_target(filename_prefix, *scenes[0].image_size[0])
        subfolder = target.subfolder.replace(os.sep, "/")  # ComfyUI's /view and model_file use '/'
        device = mm.get_torch_device()
        progress = comfy.utils.ProgressBar(2 * len(scenes))
        meshes = []
        for index, (scene, photo) in enumerate(zip(scenes, images)):  # every mesh before the first file
            mm.throw_exception_if_processing_interrupted()
            mesh = scene_mesh(scene.to(device), photo, depth_source=depth_source, edge_threshold=edge_threshold,
                              decimation=decimation).to("cpu")
            if mesh.num_faces == 0:
                raise ValueError(
                    f"SHARP to Mesh: scene {index + 1} has no triangles left (every one crosses a depth jump above "
                    f"edge_threshold {edge_threshold:g}, or the depth is empty); raise edge_threshold, or set it to 0 "
                    "to keep them all.")
            meshes.append(mesh)
            progress.update(1)
        model_files, entries = [], []
        for mesh in meshes:
            mm.throw_exception_if_processing_interrupted()
            filename, full = target.next_file(f".{format}")
            save_mesh(mesh, full, color_mode=color_mode)  # atomic: the file (or OBJ set) appears complete
            model_files.append(f"{subfolder}/{filename}" if subfolder else filename)
            entries.append({"filename": filename, "subfolder": subfolder, "type": "output"})
            progress.update(1)
        result = (model_files,)
        if CORE_MESH is not None:
            result += (to_core_mesh(meshes, color_mode, CORE_MESH, mm.intermediate_device()),)
        return {"ui": {"3d": entries}, "result": result}

    @staticmethod
    def _images(image, count: int) -> list:
        if image is None:
            return [None] * count
        try:
            batch = check_images(image)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"SHARP to Mesh: image: {exc}") from None
        if batch.shape[0] not in (1, count):
            raise ValueError(f"SHARP to Mesh got {batch.shape[0]} images for {count} scenes: connect one image, "
                             "or one per scene (the batch SHARP Predict was given).")
        return [batch[0 if batch.shape[0] == 1 else i] for i in range(count)]


NODE_CLASS_MAPPINGS = {"SharpToMesh": SharpToMesh}
NODE_DISPLAY_NAME_MAPPINGS = {"SharpToMesh": "SHARP to Mesh"}
