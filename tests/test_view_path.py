"""Key-view camera paths (the Render node's camera input): parsing, and interpolation against analytic cases."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sharp_core import (
    camera_from_view, interpolate_views, look_at, parse_camera_views, slerp, view_from_camera, view_size,
)
from sharp_core.linalg import quats_from_rotations


def view(eye=(0.0, 0.0, 0.0), target=(0.0, 0.0, 5.0), fov=40.0, width=320, height=240) -> dict:
    matrix = look_at(eye, target) if tuple(eye) != (0.0, 0.0, 0.0) or tuple(target) != (0.0, 0.0, 5.0) else torch.eye(4)
    return {"world_to_camera": matrix.double().tolist(), "fov_y_deg": fov, "width": width, "height": height}


def yaw_view(deg: float, centre=(0.0, 0.0, 0.0), fov=40.0) -> dict:
    """A camera at `centre` turned `deg` degrees about the (down-pointing) y axis."""
    a = math.radians(deg)
    rot = torch.tensor([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]], dtype=torch.float64)
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = rot
    m[:3, 3] = -rot @ torch.tensor(centre, dtype=torch.float64)
    return {"world_to_camera": m.tolist(), "fov_y_deg": fov, "width": 320, "height": 240}


def test_the_render_path_takes_the_viewers_views_parsed_once():
    """Key views come through sharp_core.parse_camera_views (tests/test_camera_views.py checks it);
    a single view dict or 16 flat numbers are accepted as the viewer and hand-typed JSON give them."""
    one = view()
    flat = dict(one, world_to_camera=[v for row in one["world_to_camera"] for v in row])
    views = parse_camera_views(json.dumps([one, flat]))
    assert views[0] == views[1] and len(interpolate_views(views, 3, 64, 48)) == 3


def test_one_view_is_that_shot():
    v = view(eye=(0.2, -0.1, 0.3), target=(0.0, 0.0, 4.0), fov=50.0)
    cams = interpolate_views([v], 3, 640, 480)
    expected = camera_from_view(v, 640, 480)
    assert len(cams) == 3
    for cam in cams:
        assert torch.allclose(cam.world_to_camera, expected.world_to_camera)
        assert torch.allclose(cam.intrinsics, expected.intrinsics)
    assert view_from_camera(cams[0], 640, 480)["fov_y_deg"] == pytest.approx(50.0, abs=1e-4)


def test_ends_are_the_keys_and_the_middle_is_analytic():
    a = yaw_view(0.0, centre=(0.0, 0.0, 0.0), fov=30.0)
    b = yaw_view(90.0, centre=(2.0, 0.0, 1.0), fov=60.0)
    cams = interpolate_views([a, b], 5, 320, 240)
    assert torch.allclose(cams[0].world_to_camera, camera_from_view(a).world_to_camera, atol=1e-6)
    assert torch.allclose(cams[-1].world_to_camera, camera_from_view(b).world_to_camera, atol=1e-5)
    # two keys: the clamped Catmull-Rom curve is p0 + d (t/2 + 3t^2/2 - t^3); slerp turns t x 90 degrees;
    # the field of view goes linearly from 30 to 60 degrees
    d = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    for i, cam in enumerate(cams):
        t = i / 4
        assert torch.allclose(cam.position.double(), d * (t / 2 + 1.5 * t**2 - t**3), atol=1e-5)
        expected_rot = torch.tensor(yaw_view(90.0 * t)["world_to_camera"], dtype=torch.float64)[:3, :3]
        assert torch.allclose(cam.world_to_camera[:3, :3].double(), expected_rot, atol=1e-5)
        fov = math.degrees(2 * math.atan(120.0 / float(cam.intrinsics[1, 1])))
        assert fov == pytest.approx(30.0 + 30.0 * t, abs=1e-4)
        assert float(cam.intrinsics[0, 2]) == 160.0 and float(cam.intrinsics[1, 2]) == 120.0


def test_several_keys_pass_through_every_key_smoothly():
    keys = [yaw_view(0.0, (0, 0, 0)), yaw_view(20.0, (1, 0, 0)), yaw_view(-10.0, (1, 0, 1)), yaw_view(0.0, (0, 0, 2))]
    cams = interpolate_views(keys, 31, 320, 240)  # keys at frames 0, 10, 20, 30
    for k, frame in zip(keys, (0, 10, 20, 30)):
        assert torch.allclose(cams[frame].world_to_camera, camera_from_view(k).world_to_camera, atol=1e-5)
    centres = torch.stack([c.position.double() for c in cams])
    steps = centres[1:] - centres[:-1]
    # C1 at the keys: the step into a key and the step out of it agree (no kink), to second order
    for frame in (10, 20):
        assert torch.allclose(steps[frame - 1], steps[frame], atol=0.02)


def test_slerp_takes_the_short_way_and_is_exact_at_the_ends():
    q0 = quats_from_rotations(torch.eye(3, dtype=torch.float64))
    q1 = -quats_from_rotations(torch.tensor(yaw_view(60.0)["world_to_camera"], dtype=torch.float64)[:3, :3])
    mid = slerp(q0, q1, 0.5)
    expected = quats_from_rotations(torch.tensor(yaw_view(30.0)["world_to_camera"], dtype=torch.float64)[:3, :3])
    assert torch.allclose(mid * torch.sign(mid[0]), expected, atol=1e-9)
    assert torch.allclose(slerp(q0, q1, 0.0), q0) and torch.allclose(slerp(q0, q0, 0.3), q0)


def test_view_size_keeps_the_aspect():
    v = view(width=800, height=600)
    assert view_size(v) == (800, 600)
    assert view_size(v, 0, 1024) == (1365, 1024)
    assert view_size(v, 400, 0) == (400, 300)
    assert view_size(v, 100, 100) == (100, 100)


def test_interpolate_views_refuses_nonsense():
    with pytest.raises(ValueError, match="at least one camera view"):
        interpolate_views([], 5, 64, 48)
    with pytest.raises(ValueError, match="frames must be at least 1"):
        interpolate_views([view()], 0, 64, 48)
