"""Stereo pairs of pinhole cameras and the frame packings 3D displays and headsets read.

Geometry (parallel axes, no toe-in, hence no keystone): the left / right eyes sit at -b/2 / +b/2
along the camera's own x axis (b = interaxial, metres), keep its orientation and focal length, and
shift their principal points by -/+ f b / (2 z_c) pixels so that a point at the convergence distance
z_c (metres, along the camera's z axis) projects to the same pixel in both eyes. A point at depth z then
has the horizontal disparity x_left - x_right = f b (1/z - 1/z_c) pixels: positive (crossed, in front of
the screen) for z < z_c, negative (behind the screen) beyond.

Packings take per-eye tensors with the frame axis first, (F, H, W, C) or (F, H, W), left eye first:
"side-by-side" (F, H, 2W, ...), "side-by-side half width" (the eyes rendered at half width with their
horizontal focal length halved, packed to (F, H, W, ...): the anamorphic squeeze 3D TVs expect),
"top-bottom" (F, 2H, W, ...; full size per eye, the over-under layout VR players read), and
"anaglyph red-cyan" (colour only: red from the left eye, green and blue from the right, on the sRGB
values, for red-left / cyan-right glasses).
"""

from __future__ import annotations

import math

import torch

from .camera import Camera
from .gaussians import Gaussians
from .rendering import RenderResult, render

__all__ = ["STEREO_MODES", "render_stereo", "stereo_pair", "stereo_eye_size", "pack_stereo", "anaglyph_red_cyan", "squeeze_camera"]

STEREO_MODES: tuple[str, ...] = (
    "off", "side-by-side", "side-by-side half width", "top-bottom", "anaglyph red-cyan",
)


def stereo_pair(camera: Camera, interaxial_m: float, convergence_m: float) -> tuple[Camera, Camera]:
    """(left, right) eye cameras of `camera` for an interaxial b = `interaxial_m` metres and zero
    disparity at `convergence_m` metres (see the module docstring for the geometry)."""
    b, zc = float(interaxial_m), float(convergence_m)
    if not math.isfinite(b) or b < 0:
        raise ValueError(f"interaxial distance is {b} m; it must be a finite number >= 0 (63 mm for human eyes).")
    if not math.isfinite(zc) or zc <= 0:
        raise ValueError(f"convergence distance is {zc} m; it must be a positive number of metres.")
    focal_x = float(camera.intrinsics[0, 0])
    shift_px = focal_x * b / (2.0 * zc)
    eyes = []
    for sign in (-1.0, 1.0):  # left eye at -b/2 along the camera's x axis, right eye at +b/2
        # world -> eye = (camera -> eye) @ (world -> camera); an eye at x = s b/2 sees camera points at x - s b/2
        offset = torch.eye(4, dtype=torch.float64)
        offset[0, 3] = -sign * b / 2.0
        intrinsics = camera.intrinsics.clone()
        intrinsics[0, 2] = intrinsics[0, 2] + sign * shift_px  # left: -f b / (2 z_c), right: +
        world_to_eye = (offset @ camera.world_to_camera.double()).float()
        eyes.append(Camera(intrinsics=intrinsics, world_to_camera=world_to_eye))
    return eyes[0], eyes[1]


def squeeze_camera(camera: Camera, x_factor: float) -> Camera:
    """The camera for an image `x_factor` times as wide with the same picture (fx and cx scaled):
    pixel edges map exactly, since pixel (i, j) spans [j, j + 1) in the intrinsics' coordinates."""
    intrinsics = camera.intrinsics.clone()
    intrinsics[0] = intrinsics[0] * float(x_factor)
    return Camera(intrinsics=intrinsics, world_to_camera=camera.world_to_camera.clone())


def stereo_eye_size(mode: str, width: int, height: int) -> tuple[int, int]:
    """Per-eye render size (width, height) for a stereo `mode` whose eyes are `width` x `height` each
    before packing; half width halves it (the packed frame is then width x height)."""
    _check_mode(mode)
    if mode == "side-by-side half width":
        if width % 2:
            raise ValueError(f"side-by-side half width needs an even width, got {width}.")
        return width // 2, height
    return width, height


def pack_stereo(left: torch.Tensor, right: torch.Tensor, mode: str) -> torch.Tensor:
    """Pack per-eye frames (F, H, W, C) or (F, H, W), left eye first, into one frame per time step.

    Side-by-side layouts concatenate along W (left on the left), "top-bottom" along H (left on top);
    "anaglyph red-cyan" needs colour (C = 3) and mixes channels (see `anaglyph_red_cyan`).
    """
    _check_mode(mode)
    if left.shape != right.shape:
        raise ValueError(f"left and right eye frames differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}.")
    if left.dim() not in (3, 4):
        raise ValueError(f"stereo frames must be (F, H, W) or (F, H, W, C), got {tuple(left.shape)}.")
    if mode in ("side-by-side", "side-by-side half width"):
        return torch.cat([left, right], dim=2)
    if mode == "top-bottom":
        return torch.cat([left, right], dim=1)
    if mode == "anaglyph red-cyan":
        return anaglyph_red_cyan(left, right)
    raise ValueError("stereo 'off' has no packing; render one eye instead.")


def anaglyph_red_cyan(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """(..., 3) colour anaglyph: red channel of the left eye, green and blue of the right eye."""
    if left.shape[-1] != 3 or right.shape != left.shape:
        raise ValueError(f"an anaglyph needs two RGB images of one shape (..., 3), got {tuple(left.shape)} "
                         f"and {tuple(right.shape)}.")
    return torch.cat([left[..., :1], right[..., 1:]], dim=-1)


def render_stereo(gaussians: Gaussians, camera: Camera, width: int, height: int, mode: str, interaxial_m: float,
                  convergence_m: float, **render_options) -> RenderResult:
    """One packed stereo frame of `camera` (intrinsics for width x height, the size of one eye before
    packing): both eyes rendered with `render` (`render_options` are its keywords) and packed by `mode`.

    color is packed as `pack_stereo` describes; alpha and depth are packed the same way, except for the
    anaglyph, which keeps the left eye's (one picture, one coverage).
    """
    _check_mode(mode)
    if mode == "off":
        return render(gaussians, camera, width, height, **render_options)
    eye_w, eye_h = stereo_eye_size(mode, width, height)
    left, right = stereo_pair(camera, interaxial_m, convergence_m)
    if eye_w != width:
        left, right = squeeze_camera(left, eye_w / width), squeeze_camera(right, eye_w / width)
    results = [render(gaussians, eye, eye_w, eye_h, **render_options) for eye in (left, right)]
    l, r = results
    if mode == "anaglyph red-cyan":
        color, alpha, depth = anaglyph_red_cyan(l.color, r.color), l.alpha, l.depth
    else:
        color, alpha, depth = (pack_stereo(a[None], b[None], mode)[0]
                               for a, b in ((l.color, r.color), (l.alpha, r.alpha), (l.depth, r.depth)))
    timings = {k: l.timings.get(k, 0.0) + r.timings.get(k, 0.0) for k in set(l.timings) | set(r.timings)}
    return RenderResult(color=color, depth=depth, alpha=alpha, backend=l.backend, compositor=l.compositor,
                        timings=timings)


def _check_mode(mode: str) -> None:
    if mode not in STEREO_MODES:
        raise ValueError(f"Unknown stereo mode '{mode}': choose one of {', '.join(STEREO_MODES)}.")
