"""Camera paths around a SHARP scene: the reference's four video moves plus hand-keyed moves.

The reference moves (`swipe`, `shake`, `rotate`, `rotate_forward`) keep the source camera's
intrinsics and move the eye in the z = `distance_m` plane (forward for `rotate_forward`), always
looking at a focus point on the optical axis. Their amplitude comes from the scene: the lateral
offset is `max_disparity` x image diagonal (in focal lengths) x near depth, the forward offset
`max_zoom` x near depth, where the near depth is the 0.1 % depth quantile of the splat centres and
the focus depth max(2 m, 10 % quantile).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch

from .camera import Camera, look_at, scene_intrinsics
from .gaussians import Gaussians

__all__ = [
    "TRAJECTORY_KINDS",
    "MOVE_KEYS",
    "depth_quantiles",
    "focus_depth",
    "max_offsets",
    "eye_positions",
    "screen_resolution",
    "camera_path",
    "move_camera",
    "keyframe_trajectory",
]

TrajectoryKind = Literal["swipe", "shake", "rotate", "rotate_forward"]
TRAJECTORY_KINDS: tuple[str, ...] = ("swipe", "shake", "rotate", "rotate_forward")
MOVE_KEYS: tuple[str, ...] = ("yaw_deg", "pitch_deg", "roll_deg", "x_m", "y_m", "z_m", "zoom")

_WORLD_UP = (0.0, -1.0, 0.0)  # y points down in the OpenCV frame
_MIN_FOCUS_M = 2.0
_FOCUS_QUANTILE = 0.1
_NEAR_QUANTILE = 0.001
_FAR_QUANTILE = 0.999


def depth_quantiles(
    gaussians: Gaussians, quantiles: Sequence[float] = (_NEAR_QUANTILE, _FOCUS_QUANTILE, _FAR_QUANTILE),
    scene: int = 0,
) -> list[float]:
    """Quantiles (linear interpolation, as torch.quantile) of the positive splat depths, metres."""
    z = gaussians.means[scene, :, 2].detach().float().cpu()
    z = z[z > 0].sort().values
    if z.numel() == 0:
        raise ValueError("The scene has no splat in front of the source camera (all depths <= 0).")
    pos = torch.tensor(list(quantiles), dtype=torch.float64) * (z.numel() - 1)
    low = pos.floor().long()
    high = pos.ceil().long()
    frac = pos - low
    values = z[low].double() * (1 - frac) + z[high].double() * frac
    return [float(v) for v in values]


def focus_depth(gaussians: Gaussians, scene: int = 0) -> float:
    """Depth (metres) of the point the reference moves look at: max(2 m, 10 % depth quantile)."""
    return max(_MIN_FOCUS_M, depth_quantiles(gaussians, (_FOCUS_QUANTILE,), scene)[0])


def max_offsets(
    gaussians: Gaussians, max_disparity: float = 0.08, max_zoom: float = 0.15, scene: int = 0
) -> tuple[float, float, float]:
    """Largest eye offsets (x, y, z) in metres for the reference moves of this scene."""
    near = depth_quantiles(gaussians, (_NEAR_QUANTILE,), scene)[0]
    width, height = gaussians.image_size[scene]
    focal = gaussians.focal_px[scene]
    diagonal = math.sqrt((width / focal) ** 2 + (height / focal) ** 2)
    lateral = max_disparity * diagonal * near
    return lateral, lateral, max_zoom * near


def eye_positions(
    kind: TrajectoryKind,
    offsets: tuple[float, float, float],
    num_steps: int = 60,
    num_repeats: int = 1,
    distance_m: float = 0.0,
) -> torch.Tensor:
    """(F, 3) eye centres in metres for one of the reference moves.

    swipe: x from -ox to +ox (repeated `num_repeats` times); shake: a horizontal sine over the
    first half of the frames then a vertical one; rotate: an ellipse in the x/y plane;
    rotate_forward: a horizontal sine with a forward bob z = oz (1 - cos) / 2.
    """
    if num_steps < 1 or num_repeats < 1:
        raise ValueError(f"num_steps and num_repeats must be >= 1, got {num_steps}, {num_repeats}.")
    ox, oy, oz = offsets
    total = num_steps * num_repeats
    two_pi = 2.0 * math.pi
    if kind == "swipe":
        x = torch.linspace(-ox, ox, num_steps, dtype=torch.float64).repeat(num_repeats)
        eyes = torch.stack([x, torch.zeros_like(x), torch.full_like(x, distance_m)], dim=-1)
    elif kind == "shake":
        n_h = total // 2
        t_h = torch.linspace(0, num_repeats, n_h, dtype=torch.float64)
        t_v = torch.linspace(0, num_repeats, total - n_h, dtype=torch.float64)
        zeros_h, zeros_v = torch.zeros_like(t_h), torch.zeros_like(t_v)
        horizontal = torch.stack([ox * torch.sin(two_pi * t_h), zeros_h, zeros_h + distance_m], -1)
        vertical = torch.stack([zeros_v, oy * torch.sin(two_pi * t_v), zeros_v + distance_m], -1)
        eyes = torch.cat([horizontal, vertical])
    elif kind == "rotate":
        t = torch.linspace(0, num_repeats, total, dtype=torch.float64)
        eyes = torch.stack(
            [ox * torch.sin(two_pi * t), oy * torch.cos(two_pi * t), torch.full_like(t, distance_m)], -1
        )
    elif kind == "rotate_forward":
        t = torch.linspace(0, num_repeats, total, dtype=torch.float64)
        eyes = torch.stack(
            [
                ox * torch.sin(two_pi * t),
                torch.zeros_like(t),
                distance_m + oz * (1.0 - torch.cos(two_pi * t)) / 2.0,
            ],
            -1,
        )
    else:
        raise ValueError(f"Unknown trajectory kind {kind!r}; choose one of {', '.join(TRAJECTORY_KINDS)}.")
    return eyes.float()


def screen_resolution(width: int, height: int) -> tuple[int, int]:
    """The reference's video size for a source photo: halved above 3000 px high, then made even."""
    if height > 3000:
        width, height = width // 2, height // 2
    return width + width % 2, height + height % 2


def camera_path(
    gaussians: Gaussians,
    kind: TrajectoryKind = "rotate_forward",
    num_frames: int = 60,
    width: int | None = None,
    height: int | None = None,
    *,
    max_disparity: float = 0.08,
    max_zoom: float = 0.15,
    distance_m: float = 0.0,
    num_repeats: int = 1,
    lookat_mode: Literal["point", "ahead"] = "point",
    scene: int = 0,
) -> list[Camera]:
    """Cameras of one of SHARP's video moves, as its render CLI builds them.

    `num_frames` is frames per repeat (the reference's `num_steps`). `width`/`height` default
    to the reference's screen size for the source photo. "point" looks at the focus point on the
    source axis, "ahead" looks straight ahead from every eye. Every camera shares the scene
    intrinsics rescaled to width x height.
    """
    if width is None or height is None:
        width, height = screen_resolution(*gaussians.image_size[scene])
    if lookat_mode not in ("point", "ahead"):
        raise ValueError(f"lookat_mode must be 'point' or 'ahead', got {lookat_mode!r}.")
    offsets = max_offsets(gaussians, max_disparity, max_zoom, scene)
    eyes = eye_positions(kind, offsets, num_frames, num_repeats, distance_m)
    focus = torch.tensor([0.0, 0.0, focus_depth(gaussians, scene)])
    intrinsics = scene_intrinsics(gaussians, width, height, scene)
    cameras = []
    for eye in eyes:  # one small 4 x 4 per frame
        target = eye + focus if lookat_mode == "ahead" else focus
        cameras.append(Camera(intrinsics=intrinsics.clone(), world_to_camera=look_at(eye, target, _WORLD_UP)))
    return cameras


def move_camera(
    gaussians: Gaussians,
    width: int,
    height: int,
    *,
    yaw_deg: float = 0.0,
    pitch_deg: float = 0.0,
    roll_deg: float = 0.0,
    x_m: float = 0.0,
    y_m: float = 0.0,
    z_m: float = 0.0,
    zoom: float = 1.0,
    focus_m: float | None = None,
    scene: int = 0,
) -> Camera:
    """The source camera moved by hand: orbit about the focus point, then offset, then zoom.

    yaw_deg > 0 swings the camera to the right around the focus point (it keeps looking at it),
    pitch_deg > 0 raises it, roll_deg > 0 turns it clockwise about its own view axis.
    x_m / y_m / z_m then shift it in its own frame (right / down / forward, metres), and zoom
    scales the focal length (2 = twice as close-up). The focus point sits on the source axis at
    `focus_m` (default: the reference's max(2 m, 10 % depth quantile)).
    """
    if zoom <= 0:
        raise ValueError(f"zoom must be positive, got {zoom}.")
    focus = focus_depth(gaussians, scene) if focus_m is None else float(focus_m)
    rotation = (
        _axis_rotation(1, -math.radians(yaw_deg))
        @ _axis_rotation(0, -math.radians(pitch_deg))
        @ _axis_rotation(2, math.radians(roll_deg))
    )  # camera-to-world
    focus_point = torch.tensor([0.0, 0.0, focus], dtype=torch.float64)
    offset = torch.tensor([x_m, y_m, z_m], dtype=torch.float64)
    eye = focus_point - rotation @ focus_point + rotation @ offset
    world_to_camera = torch.eye(4, dtype=torch.float64)
    world_to_camera[:3, :3] = rotation.T
    world_to_camera[:3, 3] = -rotation.T @ eye
    intrinsics = scene_intrinsics(gaussians, width, height, scene)
    intrinsics[:2, :2] *= zoom
    return Camera(intrinsics=intrinsics, world_to_camera=world_to_camera.float())


def keyframe_trajectory(
    gaussians: Gaussians,
    width: int,
    height: int,
    keyframes: Sequence[Mapping[str, float]],
    num_frames: int = 60,
    *,
    easing: Literal["linear", "smooth"] = "smooth",
    focus_m: float | None = None,
    scene: int = 0,
) -> list[Camera]:
    """Cameras interpolating hand-keyed moves (dicts of `move_camera` keywords) evenly in time.

    A key left out of a keyframe means "neutral" (0, or 1 for zoom). One keyframe means a move
    from the source camera to it. "smooth" eases in and out of every keyframe (smoothstep);
    the first and last frames are exactly the first and last keyframes.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    if not keyframes:
        raise ValueError("keyframes is empty; give at least one dict such as {'yaw_deg': 10}.")
    keys = [dict(k) for k in keyframes]
    for key in keys:
        unknown = set(key) - set(MOVE_KEYS)
        if unknown:
            raise ValueError(f"Unknown move keys {sorted(unknown)}; use {', '.join(MOVE_KEYS)}.")
    if len(keys) == 1:
        keys.insert(0, {})
    table = torch.tensor(
        [[float(k.get(name, 1.0 if name == "zoom" else 0.0)) for name in MOVE_KEYS] for k in keys],
        dtype=torch.float64,
    )  # (K, 7)
    focus = focus_depth(gaussians, scene) if focus_m is None else float(focus_m)
    u = torch.linspace(0, len(keys) - 1, num_frames, dtype=torch.float64) if num_frames > 1 else torch.zeros(1)
    segment = u.floor().long().clamp(max=len(keys) - 2)
    frac = u - segment
    if easing == "smooth":
        frac = frac * frac * (3 - 2 * frac)
    elif easing != "linear":
        raise ValueError(f"easing must be 'linear' or 'smooth', got {easing!r}.")
    values = table[segment] * (1 - frac[:, None]) + table[segment + 1] * frac[:, None]
    return [
        move_camera(
            gaussians, width, height, **dict(zip(MOVE_KEYS, row.tolist())), focus_m=focus, scene=scene
        )
        for row in values
    ]


def _axis_rotation(axis: int, angle: float) -> torch.Tensor:
    """(3, 3) right-handed rotation by `angle` radians about coordinate axis 0, 1 or 2."""
    c, s = math.cos(angle), math.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix = torch.eye(3, dtype=torch.float64)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix
