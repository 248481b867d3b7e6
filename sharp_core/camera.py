"""Pinhole cameras in SHARP's OpenCV convention (x right, y down, z forward, metres).

A `Camera` is just the two matrices a rasterizer needs; the output size travels separately
(`render(..., width, height)`) so one camera can be drawn at several resolutions only when
its intrinsics were built for that size (use `Camera.scene_camera` / `scene_intrinsics`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .gaussians import Gaussians

__all__ = ["Camera", "look_at", "scene_intrinsics", "camera_from_view", "view_from_camera"]


@dataclass
class Camera:
    """One pinhole view.

    Fields:
        intrinsics: (3, 3) pixel-space matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] for the size
            the camera is rendered at; pixel (i, j) has its centre at (j + 0.5, i + 0.5).
        world_to_camera: (4, 4) rigid transform taking world points (the scene frame, source
            camera at the origin) to this camera's OpenCV frame.
    """

    intrinsics: torch.Tensor
    world_to_camera: torch.Tensor

    def __post_init__(self) -> None:
        self.intrinsics = torch.as_tensor(self.intrinsics, dtype=torch.float32)
        self.world_to_camera = torch.as_tensor(self.world_to_camera, dtype=torch.float32)
        if self.intrinsics.shape != (3, 3):
            raise ValueError(
                f"Camera.intrinsics has shape {tuple(self.intrinsics.shape)}, expected (3, 3); "
                "pass only the 3 x 3 pinhole part of a 4 x 4 matrix."
            )
        if self.world_to_camera.shape != (4, 4):
            raise ValueError(
                f"Camera.world_to_camera has shape {tuple(self.world_to_camera.shape)}, expected "
                "(4, 4); append the row [0, 0, 0, 1] to a 3 x 4 [R | t] matrix."
            )

    @property
    def camera_to_world(self) -> torch.Tensor:
        """(4, 4) pose of the camera in the world (the inverse of `world_to_camera`)."""
        return torch.linalg.inv(self.world_to_camera)

    @property
    def position(self) -> torch.Tensor:
        """(3,) camera centre in world metres."""
        return self.camera_to_world[:3, 3]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Camera:
        return Camera(
            intrinsics=self.intrinsics.to(device=device, dtype=dtype),
            world_to_camera=self.world_to_camera.to(device=device, dtype=dtype),
        )

    @classmethod
    def scene_camera(cls, gaussians: Gaussians, width: int, height: int, scene: int = 0) -> Camera:
        """The camera of the photo the scene came from, re-targeted to a width x height output."""
        return cls(intrinsics=scene_intrinsics(gaussians, width, height, scene), world_to_camera=torch.eye(4))

    @classmethod
    def from_look_at(
        cls,
        intrinsics: torch.Tensor,
        eye: torch.Tensor | tuple[float, float, float],
        target: torch.Tensor | tuple[float, float, float],
        up: torch.Tensor | tuple[float, float, float] = (0.0, -1.0, 0.0),
    ) -> Camera:
        """A camera at `eye` looking at `target`; see `look_at`."""
        return cls(intrinsics=intrinsics, world_to_camera=look_at(eye, target, up))


def scene_intrinsics(gaussians: Gaussians, width: int, height: int, scene: int = 0) -> torch.Tensor:
    """(3, 3) intrinsics of the scene's source photo, rescaled per axis to width x height.

    Follows SHARP's render CLI: principal point at ((W0 - 1) / 2, (H0 - 1) / 2) for the source
    size (W0, H0) and focal `focal_px`, then row 0 scaled by width / W0 and row 1 by height / H0.
    """
    _check_size(width, height)
    src_w, src_h = gaussians.image_size[scene]
    focal = gaussians.focal_px[scene]
    sx, sy = width / src_w, height / src_h
    return torch.tensor(
        [
            [focal * sx, 0.0, (src_w - 1) / 2.0 * sx],
            [0.0, focal * sy, (src_h - 1) / 2.0 * sy],
            [0.0, 0.0, 1.0],
        ],
        dtype=torch.float32,
    )


def look_at(
    eye: torch.Tensor | tuple[float, float, float],
    target: torch.Tensor | tuple[float, float, float],
    up: torch.Tensor | tuple[float, float, float] = (0.0, -1.0, 0.0),
) -> torch.Tensor:
    """(4, 4) world-to-camera matrix of a camera at `eye` whose +z axis points at `target`.

    `up` is the world direction that should appear upwards; in SHARP's y-down frame that is
    (0, -1, 0). The camera's x axis is forward x up (right), its y axis forward x right (down).
    """
    eye, target, up = (torch.as_tensor(v, dtype=torch.float64).reshape(3) for v in (eye, target, up))
    forward = target - eye
    if forward.norm() < 1e-12:
        raise ValueError("look_at: eye and target coincide; move the target away from the eye.")
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up)
    if right.norm() < 1e-12:
        raise ValueError("look_at: the view direction is parallel to `up`; pick another up vector.")
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = -rotation @ eye
    return matrix.float()


def _check_size(width: int, height: int) -> None:
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"Output size must be positive, got {width} x {height}.")


# -- views: the JSON-serialisable camera the viewer stores and the Render node takes -----------------
def camera_from_view(view: Mapping, width: int | None = None, height: int | None = None) -> Camera:
    """A `Camera` from a view dict, re-targeted to width x height (default: the view's own size).

    A view is {"world_to_camera": 4 x 4 (nested lists or 16 numbers, row-major, OpenCV frame, metres),
    "fov_y_deg": vertical field of view, "width": px, "height": px}. Pixels are square and the principal
    point is the image centre (W / 2, H / 2), as in a WebGL viewer. Another output size keeps the
    vertical field of view (the horizontal one follows the aspect ratio).
    """
    if not isinstance(view, Mapping):
        raise ValueError(f"A camera view must be a dict, got {type(view).__name__}.")
    missing = [k for k in ("world_to_camera", "fov_y_deg", "width", "height") if k not in view]
    if missing:
        raise ValueError(f"The camera view lacks {', '.join(missing)}; a view has world_to_camera (4 x 4), "
                         "fov_y_deg, width and height.")
    try:
        matrix = torch.tensor(view["world_to_camera"], dtype=torch.float64).reshape(4, 4)
        fov = float(view["fov_y_deg"])
        src_w, src_h = int(view["width"]), int(view["height"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"The camera view is malformed ({exc}); world_to_camera needs 16 numbers.") from None
    if not bool(torch.isfinite(matrix).all()) or not math.isfinite(fov):
        raise ValueError("The camera view holds NaN or infinite numbers.")
    if not 0.0 < fov < 180.0:
        raise ValueError(f"The camera view's fov_y_deg is {fov}; it must lie between 0 and 180 degrees.")
    rotation = matrix[:3, :3]
    if (not torch.allclose(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-4)
            or float(torch.det(rotation)) <= 0 or not torch.allclose(matrix[3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64))):
        raise ValueError("The camera view's world_to_camera is not a rigid transform (rotation + translation).")
    width, height = width or src_w, height or src_h
    _check_size(width, height)
    focal = height / 2.0 / math.tan(math.radians(fov) / 2.0)
    intrinsics = torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    return Camera(intrinsics=intrinsics, world_to_camera=matrix.float())


def view_from_camera(camera: Camera, width: int, height: int) -> dict:
    """The view dict (see `camera_from_view`) of a camera rendered at width x height; uses fy."""
    _check_size(width, height)
    fov = math.degrees(2.0 * math.atan(height / 2.0 / float(camera.intrinsics[1, 1])))
    return {"world_to_camera": camera.world_to_camera.double().tolist(), "fov_y_deg": fov,
            "width": int(width), "height": int(height)}
