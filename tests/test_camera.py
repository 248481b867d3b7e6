"""Cameras, look-at, SHARP's video moves (checked against the reference formulas) and hand moves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sharp_core import Camera, Gaussians
from sharp_core.camera import look_at, scene_intrinsics
from sharp_core.trajectory import (
    TRAJECTORY_KINDS,
    focus_depth,
    keyframe_trajectory,
    max_offsets,
    move_camera,
    screen_resolution,
    camera_path,
)


def make_scene(n: int = 5000, seed: int = 0, size=(640, 480), focal: float = 500.0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    depth = 1.5 + 28.5 * torch.rand(n, generator=gen) ** 2
    xy = (torch.rand(n, 2, generator=gen) - 0.5) * depth[:, None]
    means = torch.cat([xy, depth[:, None]], -1)
    means[:7, 2] = -1.0  # a few splats behind the source camera are ignored by the quantiles
    return Gaussians(
        means=means, scales=torch.full((n, 3), 0.01), quats=torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4),
        colors=torch.rand(n, 3, generator=gen), opacities=torch.rand(n, generator=gen),
        focal_px=[focal], image_size=[size],
    )


def reference_look_at(eye, target, up=(0.0, -1.0, 0.0)) -> np.ndarray:
    """The reference's world-to-camera construction, restated: columns right, down, front."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    front = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(front, up)
    right /= np.linalg.norm(right)
    down = np.cross(front, right)
    rot = np.stack([right, down, front], axis=-1)
    out = np.eye(4)
    out[:3, :3] = rot.T
    out[:3, 3] = -rot.T @ eye
    return out


def reference_eyes(kind: str, offsets, steps: int, repeats: int = 1, distance: float = 0.0) -> np.ndarray:
    """The reference's eye positions for each move, restated with numpy."""
    ox, oy, oz = offsets
    total = steps * repeats
    if kind == "swipe":
        return np.array([[x, 0, distance] for x in np.linspace(-ox, ox, steps)] * repeats)
    if kind == "shake":
        h = total // 2
        first = [[ox * np.sin(2 * np.pi * t), 0, distance] for t in np.linspace(0, repeats, h)]
        second = [[0, oy * np.sin(2 * np.pi * t), distance] for t in np.linspace(0, repeats, total - h)]
        return np.array(first + second)
    t = np.linspace(0, repeats, total)
    if kind == "rotate":
        return np.stack([ox * np.sin(2 * np.pi * t), oy * np.cos(2 * np.pi * t), np.full_like(t, distance)], -1)
    return np.stack([ox * np.sin(2 * np.pi * t), 0 * t, distance + oz * (1 - np.cos(2 * np.pi * t)) / 2], -1)


def test_camera_validates_shapes():
    with pytest.raises(ValueError, match="intrinsics"):
        Camera(intrinsics=torch.eye(4), world_to_camera=torch.eye(4))
    with pytest.raises(ValueError, match=r"\[0, 0, 0, 1\]"):
        Camera(intrinsics=torch.eye(3), world_to_camera=torch.eye(4)[:3])
    cam = Camera(intrinsics=torch.eye(3, dtype=torch.float64), world_to_camera=torch.eye(4))
    assert cam.intrinsics.dtype == torch.float32


def test_look_at_matches_reference_and_points_at_target():
    eye, target = (0.3, -0.4, 0.5), (0.1, 0.2, 6.0)
    matrix = look_at(eye, target)
    np.testing.assert_allclose(matrix.numpy(), reference_look_at(eye, target), atol=1e-6)
    target_cam = matrix @ torch.tensor([*target, 1.0])
    assert target_cam[:2].abs().max() < 1e-5 and target_cam[2] > 0  # on the optical axis, ahead
    eye_cam = matrix @ torch.tensor([*eye, 1.0])
    assert eye_cam[:3].abs().max() < 1e-6
    above = matrix @ torch.tensor([target[0], target[1] - 1.0, target[2], 1.0])  # world "up" is -y
    assert above[1] < target_cam[1]  # appears higher in the image
    with pytest.raises(ValueError, match="parallel"):
        look_at((0, 0, 0), (0, 1, 0))
    with pytest.raises(ValueError, match="coincide"):
        look_at((1, 2, 3), (1, 2, 3))


def test_scene_camera_follows_the_render_cli():
    g = make_scene(size=(640, 480), focal=500.0)
    k = scene_intrinsics(g, 320, 240)
    expected = torch.tensor([[250.0, 0, 319.5 / 2], [0, 250.0, 239.5 / 2], [0, 0, 1]])
    torch.testing.assert_close(k, expected)
    cam = Camera.scene_camera(g, 640, 480)
    torch.testing.assert_close(cam.world_to_camera, torch.eye(4))
    assert cam.intrinsics[0, 2] == pytest.approx(319.5)
    with pytest.raises(ValueError, match="positive"):
        scene_intrinsics(g, 0, 10)


def test_screen_resolution_rule():
    assert screen_resolution(641, 479) == (642, 480)
    assert screen_resolution(4001, 3001) == (2000, 1500)


@pytest.mark.parametrize("kind", TRAJECTORY_KINDS)
def test_trajectories_reproduce_reference_formulas(kind):
    g = make_scene()
    z = g.means[0, :, 2]
    z = z[z > 0]
    q = torch.quantile(z, torch.tensor([0.001, 0.1]))
    near, focus = float(q[0]), max(2.0, float(q[1]))
    diagonal = math.sqrt((640 / 500) ** 2 + (480 / 500) ** 2)
    offsets = (0.08 * diagonal * near, 0.08 * diagonal * near, 0.15 * near)
    np.testing.assert_allclose(max_offsets(g), offsets, rtol=1e-5)
    assert focus_depth(g) == pytest.approx(focus, rel=1e-5)

    cams = camera_path(g, kind, 60, 320, 240)
    assert len(cams) == 60
    eyes = reference_eyes(kind, offsets, 60)
    for step in (0, 7, 15, 29, 30, 44, 59):
        expected = reference_look_at(eyes[step], (0.0, 0.0, focus))
        np.testing.assert_allclose(cams[step].world_to_camera.numpy(), expected, atol=2e-5)
        torch.testing.assert_close(cams[step].intrinsics, scene_intrinsics(g, 320, 240))


def test_trajectory_options():
    g = make_scene()
    offsets = max_offsets(g, max_disparity=0.05, max_zoom=0.3)
    cams = camera_path(g, "swipe", 10, 64, 48, max_disparity=0.05, max_zoom=0.3, num_repeats=2,
                      distance_m=0.5, lookat_mode="ahead")
    eyes = reference_eyes("swipe", offsets, 10, repeats=2, distance=0.5)
    assert len(cams) == 20
    for cam, eye in zip(cams, eyes):
        expected = reference_look_at(eye, eye + np.array([0.0, 0.0, focus_depth(g)]))
        np.testing.assert_allclose(cam.world_to_camera.numpy(), expected, atol=2e-5)
    default = camera_path(g, "rotate", 4)
    assert default[0].intrinsics[0, 2] == pytest.approx(319.5)  # reference screen size 640 x 480
    with pytest.raises(ValueError, match="swipe"):
        camera_path(g, "zigzag", 4, 64, 48)


def test_move_camera_semantics():
    g = make_scene()
    focus = focus_depth(g)
    still = move_camera(g, 64, 48)
    torch.testing.assert_close(still.world_to_camera, torch.eye(4), atol=1e-6, rtol=0)
    focus_h = torch.tensor([0.0, 0.0, focus, 1.0])

    def focus_in_camera(cam):
        return (cam.world_to_camera @ focus_h)[:3]

    yawed = move_camera(g, 64, 48, yaw_deg=10)
    assert yawed.position[0] > 0  # swings right
    assert focus_in_camera(yawed)[:2].abs().max() < 1e-5  # still looking at the focus point
    assert yawed.position.norm() == pytest.approx(2 * focus * math.sin(math.radians(5)), rel=1e-5)
    pitched = move_camera(g, 64, 48, pitch_deg=10)
    assert pitched.position[1] < 0  # up is -y
    assert focus_in_camera(pitched)[:2].abs().max() < 1e-5
    rolled = move_camera(g, 64, 48, roll_deg=90)
    right_axis = rolled.camera_to_world[:3, 0]
    torch.testing.assert_close(right_axis, torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)  # clockwise
    shifted = move_camera(g, 64, 48, x_m=0.2, y_m=-0.1, z_m=0.5)
    torch.testing.assert_close(shifted.position, torch.tensor([0.2, -0.1, 0.5]), atol=1e-6, rtol=0)
    zoomed = move_camera(g, 64, 48, zoom=2.0)
    assert zoomed.intrinsics[0, 0] == pytest.approx(2 * still.intrinsics[0, 0])
    assert zoomed.intrinsics[0, 2] == pytest.approx(still.intrinsics[0, 2])
    with pytest.raises(ValueError, match="zoom"):
        move_camera(g, 64, 48, zoom=0.0)


def test_keyframe_trajectory_hits_keyframes():
    g = make_scene()
    keys = [{"yaw_deg": -8.0}, {"yaw_deg": 8.0, "z_m": 0.3}, {"zoom": 1.5}]
    cams = keyframe_trajectory(g, 64, 48, keys, num_frames=21)
    assert len(cams) == 21
    for cam, key in ((cams[0], keys[0]), (cams[10], keys[1]), (cams[20], keys[2])):
        expected = move_camera(g, 64, 48, **key)
        torch.testing.assert_close(cam.world_to_camera, expected.world_to_camera, atol=1e-6, rtol=0)
        torch.testing.assert_close(cam.intrinsics, expected.intrinsics)
    one = keyframe_trajectory(g, 64, 48, [{"x_m": 1.0}], num_frames=5, easing="linear")
    xs = [float(c.position[0]) for c in one]
    assert xs == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="Unknown move keys"):
        keyframe_trajectory(g, 64, 48, [{"spin": 1.0}])


# -- view dicts (the viewer's "use this view" camera) --------------------------------------------
def test_view_round_trip_and_retarget():
    from sharp_core.camera import camera_from_view, look_at, view_from_camera

    pose = look_at((0.3, -0.2, 0.1), (0.0, 0.0, 2.0))
    view = {"world_to_camera": pose.tolist(), "fov_y_deg": 50.0, "width": 640, "height": 480}
    cam = camera_from_view(view)
    assert float(cam.intrinsics[0, 2]) == 320.0 and float(cam.intrinsics[1, 2]) == 240.0
    back = view_from_camera(cam, 640, 480)
    assert back["fov_y_deg"] == pytest.approx(50.0) and torch.allclose(torch.tensor(back["world_to_camera"]), pose)
    wide = camera_from_view(view, 1280, 480)  # another aspect keeps the vertical field of view
    assert torch.allclose(wide.intrinsics[1, 1], cam.intrinsics[1, 1]) and float(wide.intrinsics[0, 2]) == 640.0


@pytest.mark.parametrize("change, message", [
    ({"fov_y_deg": 0.0}, "between 0 and 180"),
    ({"fov_y_deg": float("nan")}, "NaN"),
    ({"world_to_camera": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "not a rigid"),
    ({"world_to_camera": [1, 2, 3]}, "16 numbers"),
    ({"width": None}, "malformed"),
])
def test_bad_views(change, message):
    from sharp_core.camera import camera_from_view

    view = dict({"world_to_camera": torch.eye(4).tolist(), "fov_y_deg": 50.0, "width": 64, "height": 48}, **change)
    with pytest.raises(ValueError, match=message):
        camera_from_view(view)
