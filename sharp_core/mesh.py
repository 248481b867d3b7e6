"""A triangle mesh of the source view: the depth map as a surface, coloured from the photo.

Pixel convention (the one SHARP unprojects its Gaussians with, see `prediction.py` and the
reference's intrinsics [[f, 0, W/2], [0, f, H/2], [0, 0, 1]]): pixel (i, j) of a W x H image has
its centre at (u, v) = (j + 0.5, i + 0.5); the principal point is the image centre (W / 2, H / 2);
pixels are square with focal length f (pixels). A pixel centre at depth z unprojects to
x = (u - W/2) z / f, y = (v - H/2) z / f in the OpenCV camera frame (x right, y down, z forward,
metres, source camera at the origin), and `project_points` inverts it. (`scene_intrinsics` puts
the principal point half a pixel left and up of that, following SHARP's render CLI; the mesh
follows the unprojection.)

Topology: one vertex per kept pixel, two triangles per quad of neighbouring vertices, wound
counter-clockwise as seen from the source camera (their normals face it). A triangle is cut when
the depths of its corners differ by more than `edge_threshold` relative to the nearest one
(max z > (1 + threshold) min z): those are the long stretched triangles a depth edge leaves between
foreground and background. Vertices no triangle uses are dropped.

Decimation keeps every n-th pixel row and column (plus the last, so the mesh spans the whole
image): n^2 times fewer vertices on a regular grid, so the topology stays valid by construction.
Depth is taken at the kept pixels (never averaged across an edge, so no floating in-between
vertices); vertex colours are averaged over the n x n block around each kept pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .camera import Camera
from .color import srgb_to_linear
from .gaussians import Gaussians
from .prediction import check_images
from .rendering import render

__all__ = ["TriangleMesh", "DEPTH_SOURCES", "DEFAULT_EDGE_THRESHOLD", "depth_to_mesh", "scene_mesh",
           "project_points", "unproject_pixels"]

DEFAULT_EDGE_THRESHOLD = 0.05  # 5 % depth jump across one triangle
DEPTH_SOURCES = ("auto", "depth map", "render splats")
MIN_COVERAGE = 0.5  # rendered depth counts where the splats cover at least half the pixel
_ASPECT_TOLERANCE = 0.01


@dataclass
class TriangleMesh:
    """One triangle mesh in the source camera's OpenCV frame (x right, y down, z forward, metres).

    Fields:
        vertices: (V, 3) float32 positions.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from the source camera.
        uvs: (V, 2) float32 texture coordinates of each vertex's pixel centre in the source image,
            glTF convention: (0, 0) is the image's top-left corner, u right, v down, 1 = full size.
        colors: (V, 3) float32 linear RGB in [0, 1] at each vertex.
        texture: (Ht, Wt, 3) float32 sRGB image in [0, 1] that `uvs` address (the source photo, or
            the splats rendered from the source camera), or None.
        image_size: (W, H) of the depth map the mesh was built from; focal_px: its focal length.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    uvs: torch.Tensor
    colors: torch.Tensor
    texture: torch.Tensor | None
    image_size: tuple[int, int]
    focal_px: float

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def to(self, device: torch.device | str) -> TriangleMesh:
        return TriangleMesh(
            vertices=self.vertices.to(device), faces=self.faces.to(device), uvs=self.uvs.to(device),
            colors=self.colors.to(device), texture=None if self.texture is None else self.texture.to(device),
            image_size=self.image_size, focal_px=self.focal_px,
        )


def unproject_pixels(depth: torch.Tensor, u: torch.Tensor, v: torch.Tensor, focal_px: float,
                     image_size: tuple[int, int]) -> torch.Tensor:
    """(..., 3) OpenCV points of pixel positions (u, v) (each (...)) at depth (...) metres."""
    width, height = image_size
    x = (u - width / 2.0) * depth / focal_px
    y = (v - height / 2.0) * depth / focal_px
    return torch.stack((x, y, depth), dim=-1)


def project_points(points: torch.Tensor, focal_px: float, image_size: tuple[int, int]) -> torch.Tensor:
    """(..., 2) pixel positions (u, v) of (..., 3) OpenCV points (z > 0); inverse of `unproject_pixels`."""
    width, height = image_size
    z = points[..., 2]
    return torch.stack((points[..., 0] * focal_px / z + width / 2.0,
                        points[..., 1] * focal_px / z + height / 2.0), dim=-1)


def depth_to_mesh(
    depth: torch.Tensor,
    focal_px: float,
    *,
    image: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
    decimation: int = 1,
) -> TriangleMesh:
    """Mesh a depth map (H, W) in metres seen with focal length `focal_px` (pixels).

    image: (Hi, Wi, 3) sRGB in [0, 1] for the colours and the texture; the depth map's aspect ratio
        (resized to H x W for vertex colours; the texture keeps its own size). None: mid grey.
    valid: (H, W) bool, pixels that hold a surface; depth <= 0 or not finite never does.
    edge_threshold: relative depth jump that cuts a triangle; 0 keeps every triangle.
    decimation: keep every n-th pixel row and column (1 = one vertex per pixel).
    """
    depth = _check_depth(depth)
    height, width = depth.shape
    if not (isinstance(focal_px, (int, float)) and math.isfinite(focal_px) and focal_px > 0):
        raise ValueError(f"focal_px must be a positive number of pixels, got {focal_px!r}.")
    if not (math.isfinite(edge_threshold) and edge_threshold >= 0):
        raise ValueError(f"edge_threshold must be 0 (no cutting) or positive, got {edge_threshold}.")
    if int(decimation) != decimation or decimation < 1:
        raise ValueError(f"decimation must be a whole number >= 1 (1 = full resolution), got {decimation}.")
    decimation = int(decimation)
    device = depth.device

    rows = _kept_indices(height, decimation, device)
    cols = _kept_indices(width, decimation, device)
    z = depth[rows][:, cols]
    ok = torch.isfinite(z) & (z > 0)
    if valid is not None:
        if tuple(valid.shape) != (height, width):
            raise ValueError(f"valid has shape {tuple(valid.shape)}, expected the depth map's ({height}, {width}).")
        ok &= valid.to(device=device, dtype=torch.bool)[rows][:, cols]
    z = torch.where(ok, z, torch.zeros_like(z))

    v_px, u_px = torch.meshgrid(rows.to(torch.float32) + 0.5, cols.to(torch.float32) + 0.5, indexing="ij")
    vertices = unproject_pixels(z, u_px, v_px, float(focal_px), (width, height)).reshape(-1, 3)
    uvs = torch.stack((u_px / width, v_px / height), dim=-1).reshape(-1, 2)
    colors, texture = _vertex_colors(image, rows, cols, (height, width), decimation, device)

    faces = _grid_faces(z, ok, edge_threshold)
    used = torch.zeros(vertices.shape[0], dtype=torch.bool, device=device)
    used[faces.reshape(-1)] = True
    remap = torch.cumsum(used, 0) - 1
    return TriangleMesh(
        vertices=vertices[used], faces=remap[faces], uvs=uvs[used], colors=colors[used], texture=texture,
        image_size=(width, height), focal_px=float(focal_px),
    )


def scene_mesh(
    gaussians: Gaussians,
    image: torch.Tensor | None = None,
    *,
    scene: int = 0,
    depth_source: str = "auto",
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
    decimation: int = 1,
    backend: str = "auto",
) -> TriangleMesh:
    """Mesh scene `scene` of a Gaussians batch as seen from its source camera.

    depth_source: "depth map" uses the depth `predict` stored (the monodepth's first layer at the
        input resolution); "render splats" renders the splats from the source camera and meshes
        their depth where they cover the pixel (scenes loaded from files have no depth map, and
        edits such as crops show only there); "auto" picks the depth map when there is one.
    image: (H, W, 3) or (1, H, W, 3) sRGB in [0, 1], the photo for the colours; None colours the
        mesh with the splats rendered from the source camera.
    edge_threshold, decimation: see `depth_to_mesh`. backend: the renderer's, see `render`.
    """
    if depth_source not in DEPTH_SOURCES:
        raise ValueError(f"Unknown depth_source {depth_source!r}: choose one of {', '.join(DEPTH_SOURCES)}.")
    if not -gaussians.batch_size <= scene < gaussians.batch_size:
        raise IndexError(f"scene {scene} out of range for a batch of {gaussians.batch_size} scenes.")
    one = gaussians[scene]
    width, height = one.image_size[0]
    focal = one.focal_px[0]
    if image is not None:
        image = check_images(image)
        if image.shape[0] != 1:
            raise ValueError(f"scene_mesh takes one image per scene, got a batch of {image.shape[0]}.")
        image = image[0]
    use_map = depth_source == "depth map" or (depth_source == "auto" and one.depth is not None)
    if use_map and one.depth is None:
        raise ValueError("This scene has no depth map (it was not made by SHARP Predict, e.g. loaded from a "
                         "file); use depth_source 'render splats' or 'auto'.")
    depth, valid = (one.depth[0].float(), None) if use_map else (None, None)
    if depth is None or image is None:
        # cx = W / 2 (the unprojection's principal point), so rendered pixels line up with the mesh
        intrinsics = torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
        with torch.inference_mode():
            result = render(one, Camera(intrinsics=intrinsics, world_to_camera=torch.eye(4)), width, height,
                            backend=backend)
        if depth is None:
            depth, valid = result.depth, result.alpha >= MIN_COVERAGE
        if image is None:
            image = result.color
    return depth_to_mesh(depth, focal, image=image, valid=valid, edge_threshold=edge_threshold,
                         decimation=decimation)


# -- pieces ----------------------------------------------------------------------------------------
def _check_depth(depth) -> torch.Tensor:
    if not isinstance(depth, torch.Tensor):
        raise TypeError(f"depth must be a torch.Tensor (H, W) in metres, got {type(depth).__name__}.")
    if depth.dim() == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.dim() != 2 or min(depth.shape) < 2:
        raise ValueError(f"depth must be one map (H, W) of at least 2 x 2 pixels, got shape {tuple(depth.shape)}.")
    if not depth.is_floating_point():
        raise ValueError(f"depth must hold floats (metres), got {depth.dtype}.")
    return depth.float()


def _kept_indices(size: int, step: int, device) -> torch.Tensor:
    """Every `step`-th index of range(size), plus the last one."""
    kept = torch.arange(0, size, step, device=device)
    if int(kept[-1]) != size - 1:
        kept = torch.cat((kept, torch.tensor([size - 1], device=device)))
    return kept


def _grid_faces(z: torch.Tensor, ok: torch.Tensor, edge_threshold: float) -> torch.Tensor:
    """(F, 3) int64 faces of a (h, w) vertex grid (row-major ids): per quad (top-left, bottom-left,
    top-right) and (bottom-left, bottom-right, top-right), both counter-clockwise seen from the
    camera in OpenCV's y-down image; a face is kept when its corners are valid and within the jump."""
    h, w = z.shape
    ids = torch.arange(h * w, device=z.device).reshape(h, w)
    corners = [(slice(None, -1), slice(None, -1)), (slice(1, None), slice(None, -1)),
               (slice(None, -1), slice(1, None)), (slice(1, None), slice(1, None))]
    tl, bl, tr, br = ((ids[c], z[c], ok[c]) for c in corners)
    faces, keeps = [], []
    for a, b, c in ((tl, bl, tr), (bl, br, tr)):
        keep = a[2] & b[2] & c[2]
        if edge_threshold > 0:
            near = torch.minimum(torch.minimum(a[1], b[1]), c[1])
            far = torch.maximum(torch.maximum(a[1], b[1]), c[1])
            keep &= far <= near * (1.0 + edge_threshold)
        faces.append(torch.stack((a[0], b[0], c[0]), dim=-1))
        keeps.append(keep)
    faces = torch.stack(faces, dim=2).reshape(-1, 3)  # quad by quad, its two triangles in turn
    return faces[torch.stack(keeps, dim=2).reshape(-1)]


def _vertex_colors(image, rows, cols, size, decimation, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Linear RGB (h * w, 3) at the kept pixels, and the sRGB texture (or None without an image)."""
    height, width = size
    if image is None:
        grey = srgb_to_linear(torch.tensor(0.5))
        return torch.full((rows.numel() * cols.numel(), 3), float(grey), device=device), None
    if image.dim() != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {tuple(image.shape)}.")
    image_h, image_w = image.shape[:2]
    if abs(image_w * height - width * image_h) > _ASPECT_TOLERANCE * width * image_h:
        raise ValueError(f"The image is {image_w} x {image_h} but the depth map is {width} x {height}: connect the "
                         "photo the scene was predicted from (or one resized without changing its aspect ratio).")
    texture = image.to(device=device, dtype=torch.float32).clamp(0, 1)
    linear = srgb_to_linear(texture).permute(2, 0, 1).unsqueeze(0)  # resize and average in linear light
    if image_h > height:  # a larger photo: each depth pixel gets the mean of the photo pixels it covers
        linear = F.interpolate(linear, size=(height, width), mode="area")
    elif image_h < height:
        linear = F.interpolate(linear, size=(height, width), mode="bilinear", align_corners=False)
    if decimation > 1:
        kernel = decimation | 1  # odd, so the block is centred on the kept pixel
        linear = F.avg_pool2d(linear, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    colors = linear[0][:, rows][:, :, cols].permute(1, 2, 0).reshape(-1, 3)
    return colors.clamp(0, 1), texture
