"""Camera paths from key views: the viewer's "use this view" cameras, one shot or a move by example.

A key view is the JSON-serialisable dict of `camera_from_view` (world_to_camera 4 x 4 in the scene's
OpenCV frame, metres; fov_y_deg; width; height). Between keys, evenly spaced in time:
- camera centres follow a uniform Catmull-Rom spline through the keys (C1-smooth, ends clamped by
  repeating the first / last key), so a path through several keys has no kinks;
- orientations are slerped (shortest arc) between consecutive keys;
- the vertical field of view is interpolated linearly.
The first and last frames are exactly the first and last keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .camera import Camera, camera_from_view
from .camera_views import parse_camera_views
from .linalg import quats_from_rotations, rotations_from_quats

__all__ = ["interpolate_views", "view_size", "slerp"]



def view_size(view: Mapping, width: int = 0, height: int = 0) -> tuple[int, int]:
    """Output size for a view: both given -> them; one given -> the other from the view's aspect
    ratio; none -> the view's own size. Rounded to whole pixels, at least 1."""
    src_w, src_h = int(view["width"]), int(view["height"])
    if width and height:
        return int(width), int(height)
    if width:
        return int(width), max(1, round(width * src_h / src_w))
    if height:
        return max(1, round(height * src_w / src_h)), int(height)
    return src_w, src_h


def slerp(q0: torch.Tensor, q1: torch.Tensor, t: float) -> torch.Tensor:
    """Unit quaternion (w, x, y, z) a fraction t along the shortest arc from q0 to q1 (float64)."""
    q0, q1 = q0.double() / q0.double().norm(), q1.double() / q1.double().norm()
    dot = float(q0 @ q1)
    if dot < 0.0:  # q and -q are one rotation: take the short way round
        q1, dot = -q1, -dot
    if dot > 1.0 - 1e-10:  # nearly equal: linear is exact to float precision
        q = q0 + (q1 - q0) * t
        return q / q.norm()
    angle = math.acos(min(1.0, dot))
    s = math.sin(angle)
    return q0 * (math.sin((1.0 - t) * angle) / s) + q1 * (math.sin(t * angle) / s)


def interpolate_views(views: Sequence[Mapping], frames: int, width: int, height: int) -> list[Camera]:
    """`frames` cameras (intrinsics for width x height) through the key views, see the module docstring.

    One key view gives that shot on every frame. The principal point is the image centre and pixels are
    square, as in `camera_from_view`; the vertical field of view is kept at any output size.
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}.")
    views = parse_camera_views(list(views))
    if not views:
        raise ValueError("No key view given: pass at least one camera view.")
    keys = [camera_from_view(v, width, height) for v in views]
    if len(keys) == 1:
        return [Camera(keys[0].intrinsics.clone(), keys[0].world_to_camera.clone()) for _ in range(frames)]
    poses = [k.world_to_camera.double() for k in keys]
    rotations = [p[:3, :3] for p in poses]  # world -> camera
    centres = [-(r.T @ p[:3, 3]) for r, p in zip(rotations, poses)]
    quats = [quats_from_rotations(r) for r in rotations]
    fovs = [float(v["fov_y_deg"]) for v in views]
    last = len(keys) - 1
    cameras = []
    for frame in range(frames):
        u = frame * last / (frames - 1) if frames > 1 else 0.0
        seg = min(int(math.floor(u)), last - 1)
        t = u - seg
        p0, p1, p2, p3 = (centres[min(max(i, 0), last)] for i in (seg - 1, seg, seg + 1, seg + 2))
        centre = _catmull_rom(p0, p1, p2, p3, t)
        rotation = rotations_from_quats(slerp(quats[seg], quats[seg + 1], t))
        fov = fovs[seg] * (1.0 - t) + fovs[seg + 1] * t
        focal = height / 2.0 / math.tan(math.radians(fov) / 2.0)
        world_to_camera = torch.eye(4, dtype=torch.float64)
        world_to_camera[:3, :3] = rotation
        world_to_camera[:3, 3] = -rotation @ centre
        intrinsics = torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
        cameras.append(Camera(intrinsics=intrinsics, world_to_camera=world_to_camera.float()))
    return cameras


def _catmull_rom(p0, p1, p2, p3, t: float) -> torch.Tensor:
    """Uniform Catmull-Rom point between p1 (t = 0) and p2 (t = 1), tangents (p2 - p0) / 2, (p3 - p1) / 2."""
    t2, t3 = t * t, t * t * t
    m1, m2 = (p2 - p0) / 2.0, (p3 - p1) / 2.0
    return ((2 * t3 - 3 * t2 + 1) * p1 + (t3 - 2 * t2 + t) * m1
            + (-2 * t3 + 3 * t2) * p2 + (t3 - t2) * m2)
