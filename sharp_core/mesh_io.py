"""Triangle-mesh files for 3D tools and viewers: binary glTF (.glb), Wavefront OBJ, binary PLY.

Frame: the files are y-up (glTF's convention, which three.js, Blender and ComfyUI's Load 3D /
Preview 3D expect): the mesh's OpenCV coordinates (x right, y down, z forward) are turned half
a turn about x (`OPENCV_TO_Y_UP`: (x, y, z) -> (x, -y, -z)), so the source camera sits at the
origin looking down -z, glTF's camera convention. Metres, right-handed; a rotation keeps the
faces' winding, so they stay counter-clockwise seen from the source camera.

Colour spaces follow each format's rule: glTF COLOR_0 is linear RGB (float), glTF base-colour
textures are sRGB (the photo's PNG as is); OBJ `v x y z r g b` and PLY uchar colours are sRGB, as
the viewers that read them display them directly. glTF materials are unlit
(KHR_materials_unlit, with the spec's white, rough, non-metallic fallback): the colours are the
photo's, already lit. Every file is written under a temporary name and renamed when complete; an
OBJ set (.obj, .mtl, .png) is renamed texture first, so the .obj never names a missing file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_targets
from .color import linear_to_srgb
from .edit import OPENCV_TO_Y_UP
from .glb import ELEMENT_ARRAY_BUFFER, GltfBuilder
from .mesh import TriangleMesh

__all__ = ["MESH_FORMATS", "COLOR_MODES", "save_mesh", "mesh_files", "glb_bytes", "y_up_vertices"]

MESH_FORMATS = ("glb", "obj", "ply")
COLOR_MODES = ("vertex colors", "texture")
_UNLIT = "KHR_materials_unlit"
_LINEAR, _CLAMP_TO_EDGE = 9729, 33071
_TEXT_ROWS = 200_000  # OBJ lines formatted per chunk (bounds the text held in memory)


def y_up_vertices(mesh: TriangleMesh) -> np.ndarray:
    """(V, 3) float32 vertices in the files' y-up frame."""
    return (mesh.vertices.detach().float().cpu() @ OPENCV_TO_Y_UP.T).numpy().astype(np.float32)


def mesh_files(path: str | os.PathLike, format: str | None = None, color_mode: str = "vertex colors") -> list[Path]:
    """The files `save_mesh` writes for `path`: [.obj, .mtl, .png] for a textured OBJ, else [path]."""
    path = Path(path)
    format = _format(path, format)
    if format == "obj" and color_mode == "texture":
        return [path, path.with_suffix(".mtl"), path.with_suffix(".png")]
    return [path]


def save_mesh(mesh: TriangleMesh, path: str | os.PathLike, *, format: str | None = None,
              color_mode: str = "vertex colors") -> list[Path]:
    """Write `mesh` as .glb, .obj or .ply (from `format` or the file name); returns the files written.

    color_mode "vertex colors" stores a colour per vertex; "texture" stores the mesh's texture
    image with UVs at the pixel centres (.glb: embedded PNG; .obj: a .png and .mtl beside it;
    .ply has no standard texture, so it refuses).
    """
    path = Path(path)
    format = _format(path, format)
    if color_mode not in COLOR_MODES:
        raise ValueError(f"Unknown color_mode {color_mode!r}: choose one of {', '.join(COLOR_MODES)}.")
    if not isinstance(mesh, TriangleMesh):
        raise TypeError(f"save_mesh expects a sharp_core TriangleMesh, got {type(mesh).__name__}.")
    if mesh.num_faces == 0:
        raise ValueError("The mesh has no triangles left (every one crosses a depth jump above edge_threshold, or "
                         "the depth map is empty); raise edge_threshold, or set it to 0 to keep them all.")
    textured = color_mode == "texture"
    if textured and mesh.texture is None:
        raise ValueError("This mesh has no texture image; use color_mode 'vertex colors'.")
    if textured and format == "ply":
        raise ValueError("PLY meshes carry vertex colours only; use color_mode 'vertex colors', or save .glb or "
                         ".obj for a texture.")
    targets = mesh_files(path, format, color_mode)
    with atomic_targets(targets[::-1]) as temps:  # the .obj, which names the others, appears last
        temps = temps[::-1]
        if format == "glb":
            temps[0].write_bytes(glb_bytes(mesh, textured))
        elif format == "ply":
            _write_ply(mesh, temps[0])
        else:
            _write_obj(mesh, temps, [t.name for t in targets], textured)
    return targets


def glb_bytes(mesh: TriangleMesh, textured: bool) -> bytes:
    """The .glb file: one unlit, double-sided triangle primitive; COLOR_0 (linear float) or a
    PNG base-colour texture with TEXCOORD_0."""
    b = GltfBuilder()
    attributes = {"POSITION": b.add_accessor(y_up_vertices(mesh), "VEC3", bounds=True)}
    pbr = {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 1.0}
    if textured:
        attributes["TEXCOORD_0"] = b.add_accessor(_numpy(mesh.uvs, np.float32), "VEC2")
        view = b.add_buffer_view(_png(mesh.texture))
        b.json["images"] = [{"bufferView": view, "mimeType": "image/png"}]
        b.json["samplers"] = [{"magFilter": _LINEAR, "minFilter": _LINEAR, "wrapS": _CLAMP_TO_EDGE,
                               "wrapT": _CLAMP_TO_EDGE}]
        b.json["textures"] = [{"source": 0, "sampler": 0}]
        pbr["baseColorTexture"] = {"index": 0, "texCoord": 0}
    else:
        attributes["COLOR_0"] = b.add_accessor(_numpy(mesh.colors.clamp(0, 1), np.float32), "VEC3")
    indices = b.add_accessor(_numpy(mesh.faces, np.uint32).reshape(-1), "SCALAR", target=ELEMENT_ARRAY_BUFFER)
    b.json.update({
        "extensionsUsed": [_UNLIT],
        "materials": [{"name": "sharp_photo", "pbrMetallicRoughness": pbr, "doubleSided": True,
                       "extensions": {_UNLIT: {}}}],
        "meshes": [{"name": "sharp_depth_mesh",
                    "primitives": [{"attributes": attributes, "indices": indices, "material": 0, "mode": 4}]}],
        "nodes": [{"name": "sharp_depth_mesh", "mesh": 0}],
        "scenes": [{"nodes": [0]}],
        "scene": 0,
    })
    return b.to_bytes()


# -- PLY and OBJ -----------------------------------------------------------------------------------
def _write_ply(mesh: TriangleMesh, path: Path) -> None:
    vertex = np.empty(mesh.num_vertices, dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3)])
    vertex["xyz"] = y_up_vertices(mesh)
    vertex["rgb"] = _srgb_bytes(mesh.colors)
    face = np.empty(mesh.num_faces, dtype=[("n", "u1"), ("ids", "<i4", 3)])
    face["n"] = 3
    face["ids"] = _numpy(mesh.faces, np.int32)
    header = "\n".join([
        "ply", "format binary_little_endian 1.0",
        "comment sharp_core depth mesh: metres, y up (OpenCV frame turned half about x), sRGB colours",
        f"element vertex {mesh.num_vertices}",
        "property float x", "property float y", "property float z",
        "property uchar red", "property uchar green", "property uchar blue",
        f"element face {mesh.num_faces}",
        "property list uchar int vertex_indices",
        "end_header",
    ]) + "\n"
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vertex.tobytes())
        f.write(face.tobytes())


def _write_obj(mesh: TriangleMesh, temps: list[Path], names: list[str], textured: bool) -> None:
    vertices = y_up_vertices(mesh)
    with open(temps[0], "w", encoding="ascii", newline="\n") as f:
        f.write("# sharp_core depth mesh: metres, y up (OpenCV frame turned half about x)\n")
        if textured:
            f.write(f"mtllib {names[1]}\nusemtl sharp_photo\n")
            _write_rows(f, "v %.6f %.6f %.6f\n", vertices)
            uv = _numpy(mesh.uvs, np.float64)
            uv[:, 1] = 1.0 - uv[:, 1]  # OBJ's texture origin is the bottom-left corner
            _write_rows(f, "vt %.7f %.7f\n", uv)
            _write_rows(f, "f %d/%d %d/%d %d/%d\n", np.repeat(_numpy(mesh.faces, np.int64) + 1, 2, axis=1))
        else:  # the common `v x y z r g b` extension, sRGB in [0, 1]
            colors = linear_to_srgb(mesh.colors.detach().float().cpu().clamp(0, 1)).numpy()
            _write_rows(f, "v %.6f %.6f %.6f %.4f %.4f %.4f\n", np.concatenate([vertices, colors], 1))
            _write_rows(f, "f %d %d %d\n", _numpy(mesh.faces, np.int64) + 1)
    if textured:
        temps[1].write_text(
            "# sharp_core depth mesh material: the photo, unlit\n"
            f"newmtl sharp_photo\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {names[2]}\n",
            encoding="ascii",
        )
        temps[2].write_bytes(_png(mesh.texture))


def _write_rows(f, line: str, rows: np.ndarray) -> None:
    """Write `rows` with the %-style `line` (one row's values), one C-speed pass per chunk."""
    for start in range(0, rows.shape[0], _TEXT_ROWS):
        chunk = rows[start:start + _TEXT_ROWS]
        f.write((line * chunk.shape[0]) % tuple(chunk.ravel().tolist()))


# -- helpers ---------------------------------------------------------------------------------------
def _format(path: Path, format: str | None) -> str:
    format = (format or path.suffix.lstrip(".")).lower()
    if format not in MESH_FORMATS:
        raise ValueError(f"{path}: unknown mesh format {format!r}; use one of {', '.join(MESH_FORMATS)}.")
    if path.suffix.lower() != f".{format}":
        raise ValueError(f"{path}: a {format} file must end in .{format}.")
    return format


def _numpy(tensor: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy().astype(dtype, copy=False))


def _srgb_bytes(linear: torch.Tensor) -> np.ndarray:
    srgb = linear_to_srgb(linear.detach().float().cpu().clamp(0, 1))
    return (srgb * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def _png(texture: torch.Tensor) -> bytes:
    pixels = (texture.detach().float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()

