"""SHARP_CAMERA values: parsing the viewer's `camera_views` JSON and the Preview node's `camera` output."""

from __future__ import annotations

import json
import math

import pytest
import torch

from comfy_env import comfy_base  # noqa: F401  (fixture)
from sharp_core import Camera, camera_from_view, look_at, opening_view, parse_camera_views, view_from_camera
from sharp_core.camera_views import MAX_CAMERA_VIEWS
from sharp_core.gaussians import Gaussians
from sharp_core.preview_file import initial_view


def scene(n: int = 400, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.stack([torch.rand(n, generator=g) - 0.5, torch.rand(n, generator=g) - 0.5,
                         2.0 + torch.rand(n, generator=g)], 1)
    return Gaussians(means=means, scales=torch.full((n, 3), 0.02), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                     colors=torch.rand(n, 3, generator=g), opacities=torch.full((n,), 0.8),
                     focal_px=[500.0], image_size=[(640, 480)])


def a_view(width: int = 320, height: int = 200, fov: float = 40.0) -> dict:
    w2c = look_at((0.3, -0.2, -0.5), (0.0, 0.0, 2.5))
    focal = height / 2 / math.tan(math.radians(fov) / 2)
    cam = Camera(intrinsics=torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]]),
                 world_to_camera=w2c)
    return view_from_camera(cam, width, height)


def test_views_round_trip_through_json_text_one_view_or_many():
    view = a_view()
    parsed = parse_camera_views(json.dumps([view, a_view(640, 480, 60.0)]))
    assert len(parsed) == 2
    assert parsed[0]["width"] == 320 and parsed[0]["fov_y_deg"] == pytest.approx(40.0)
    assert torch.allclose(camera_from_view(parsed[0]).world_to_camera, camera_from_view(view).world_to_camera)
    # one view object, or 16 flat numbers, also typed by hand
    flat = dict(view, world_to_camera=[x for row in view["world_to_camera"] for x in row])
    single = parse_camera_views(json.dumps(flat))
    assert single == [parsed[0]] and json.loads(json.dumps(single)) == single
    assert parse_camera_views("") == [] and parse_camera_views("  ") == [] and parse_camera_views(None) == []


@pytest.mark.parametrize("text, message", [
    ("[{", "not valid JSON"),
    ("42", "must be a list"),
    ('[{"fov_y_deg": 40, "width": 3, "height": 2}]', "view 1 of 1.*lacks world_to_camera"),
    (json.dumps([a_view(), dict(a_view(), fov_y_deg=200)]), "view 2 of 2.*between 0 and 180"),
    (json.dumps([dict(a_view(), world_to_camera=[[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])]),
     "not a rigid transform"),
    (json.dumps([dict(a_view(), width=0)]), "positive"),
    (json.dumps([a_view()] * (MAX_CAMERA_VIEWS + 1)), "at most"),
])
def test_malformed_views_fail_with_a_message_naming_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_camera_views(text)


def test_opening_view_is_the_previews_initial_view_with_the_photos_field_of_view():
    g = scene()
    view = opening_view(g)
    assert (view["width"], view["height"]) == (640, 480)
    assert view["fov_y_deg"] == pytest.approx(math.degrees(2 * math.atan(240 / 500.0)))
    expected = torch.from_numpy(initial_view(g).world_to_camera()).float()
    assert torch.allclose(camera_from_view(view).world_to_camera, expected)
    assert torch.allclose(expected, torch.eye(4))  # a camera-framed scene: the source camera


def test_preview_node_outputs_the_stored_views(comfy_base):
    from nodes.preview import CAMERA_VIEWS_INPUT, SharpPreviewGaussians

    spec = SharpPreviewGaussians.INPUT_TYPES()
    assert spec["optional"][CAMERA_VIEWS_INPUT][0] == "STRING"  # old workflows without it still run
    assert SharpPreviewGaussians.RETURN_TYPES == ("SHARP_CAMERA",)
    assert SharpPreviewGaussians.RETURN_NAMES == ("camera",)
    node = SharpPreviewGaussians()
    views = [a_view(), a_view(640, 480, 60.0)]
    out = node.preview(scene(), max_splats=0, camera_views=json.dumps(views))
    (camera,) = out["result"]
    assert camera == parse_camera_views(views) and len(camera) == 2
    assert out["ui"]["sharp_preview"][0]["filename"].endswith(".shpv")
    assert node.preview(scene(), 0)["result"][0] == [opening_view(scene())]


def test_preview_node_rejects_a_malformed_view_before_writing(comfy_base):
    from nodes.preview import SharpPreviewGaussians

    folder = comfy_base / "temp" / "sharp_preview"
    before = set(folder.iterdir()) if folder.exists() else set()
    with pytest.raises(ValueError, match="camera_views is not valid JSON"):
        SharpPreviewGaussians().preview(scene(), 0, camera_views="[{oops")
    after = set(folder.iterdir()) if folder.exists() else set()
    assert after == before
